"""Alembic revisions of the mevsuite store, oldest first."""
