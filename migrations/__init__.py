"""Alembic migrations of the service database."""
