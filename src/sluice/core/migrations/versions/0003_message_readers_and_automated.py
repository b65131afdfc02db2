"""Two facts per message for the sender history: readers and automated.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

The classifier reads what each sender sent before (`classifier/history.py`). A gateway
counts it in memory and, when it starts, from the newest recorded messages
(`gateway/senders.py`). Two of the facts counted cannot be told from the other columns:
how many people read a message (a distribution list counting as ten) and whether it came
from a list or a system (List-Id, Precedence, Auto-Submitted, a null or system sender).
Messages recorded before this revision count as read by their To and Cc and as not
automated.

Added columns with defaults: no table is copied on either dialect, and a node of the
previous version keeps writing rows (the defaults fill them).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.add_column(sa.Column("readers", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("automated", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.drop_column("automated")
        batch.drop_column("readers")
