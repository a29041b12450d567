"""Alembic migrations of the mevsuite store (run them with :func:`bots.store.migrate.upgrade`)."""
