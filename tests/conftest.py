"""Shared test configuration: hypothesis profiles and the fixture plugins of each area."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# `make test` picks `ci` when CI is set (derandomized, bounded); `make test-long` uses `long`.
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=60,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "long", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

pytest_plugins = ["tests.fixtures.node", "tests.fixtures.devnet"]
