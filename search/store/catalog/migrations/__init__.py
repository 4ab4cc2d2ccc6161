"""Alembic migrations for the catalog, numbered; each says why it exists."""
