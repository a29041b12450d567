"""Tests of bots/: store, config, metrics."""
