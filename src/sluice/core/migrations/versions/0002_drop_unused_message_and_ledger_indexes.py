"""Drop two indexes the gateway paid for on every message and no query used.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

- `ix_ledger_fingerprint`: the ledger is looked up by fingerprint through the unique
  (fingerprint, recipient) index, whose first column it is; the second index cost each
  recipient of each message a B-tree insert (about 13 µs of the writer thread's CPU per row,
  docs/performance.md, session 7).
- `ix_message_thread_subject`: no query selects messages by thread subject (the shared
  space's posts have their own index on it).

Plain index statements: both dialects drop and create indexes in place, so no table is
copied.
"""

from __future__ import annotations

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.drop_index("ix_ledger_fingerprint", table_name="ledger")
    op.drop_index("ix_message_thread_subject", table_name="message")


def downgrade() -> None:
    op.create_index("ix_message_thread_subject", "message", ["thread_subject"], unique=False)
    op.create_index("ix_ledger_fingerprint", "ledger", ["fingerprint"], unique=False)
