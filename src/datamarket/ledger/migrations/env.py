"""Alembic environment: runs on the connection passed by :func:`datamarket.ledger.migrations.upgrade`.

Importing this module outside a migration (e.g. while collecting doctests) does nothing.
"""

from __future__ import annotations

from alembic import context

from datamarket.ledger.models import Base


def run_migrations() -> None:
    """Run the pending revisions on the connection handed over in ``config.attributes``."""
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if getattr(context, "_proxy", None) is not None:
    run_migrations()
