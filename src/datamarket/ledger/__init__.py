"""Persistence: SQLAlchemy models, migrations and exact money."""
