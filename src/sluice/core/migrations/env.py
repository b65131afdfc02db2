"""Alembic's entry point: run the revisions on the connection handed over in the config."""

from __future__ import annotations

from alembic import context

from sluice.core.migrations import comparison_options

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("Sluice's migrations run through `sluice db` or init_schema, "
                       "on a connection; alembic's own command line is not configured")
context.configure(connection=connection, **comparison_options())
with context.begin_transaction():
    context.run_migrations()
