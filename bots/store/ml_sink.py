"""Wires the ML registry's run records into the database (ml/ may not import bots/: it takes a sink)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from bots.store import Store


def _time(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class StoreRunSink:
    """``record_run(record)`` → ``Store.record_model_run`` (insert, or update the same run id)."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.written = 0

    async def _write(self, record: dict[str, Any]) -> None:
        store = await Store.open(self.url, upgrade=True)
        try:
            await store.record_model_run(
                run_id=str(record["run_id"]),
                model=str(record.get("model", "ml")),
                status=str(record.get("status", "finished")),
                started_at=_time(record.get("started_at")) or dt.datetime.now(dt.UTC),
                version=None if record.get("version") is None else str(record["version"]),
                finished_at=_time(record.get("finished_at")),
                params=record.get("params"),
                metrics=record.get("metrics"),
                artifact_uri=record.get("artifact_uri"),
            )
        finally:
            await store.close()
        self.written += 1

    def record_run(self, record: dict[str, Any]) -> None:
        asyncio.run(self._write(record))
