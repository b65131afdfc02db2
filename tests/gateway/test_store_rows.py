"""The writer's rows bind only the known datetime columns: the same values as binding
every value by its type, which is what SQLAlchemy would store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine

from sluice.core.rawsql import bind
from sluice.gateway.store import MessageFacts, OutcomeRow, _rows, _Sql


def test_rows_bind_datetimes_like_the_generic_bind() -> None:
    sql = _Sql(create_engine("sqlite://"))
    moment = datetime(2026, 11, 24, 1, 2, 3, 456789, tzinfo=UTC)
    facts = MessageFacts(
        message={"fingerprint": "f1", "source": "smtp", "mail_from": "a@example.com"},
        outcomes=(OutcomeRow("b@example.com", "copy", "delivered", "250 ok"),),
        delivered=(("b@example.com", "250 ok"),),
        outbox=({"key": "f1:space", "destination": "space", "next_attempt_at": moment,
                 "deadline_at": moment + timedelta(minutes=30), "created_at": moment},))
    rows = _rows(sql, facts)
    assert rows.message is not None
    every = [rows.message, *rows.outcomes, *rows.ledger, *rows.outbox]
    # No datetime is left for the driver: each was a known datetime column.
    assert not [(k, v) for row in every for k, v in row.items() if isinstance(v, datetime)]
    assert rows.outbox[0]["deadline_at"] == bind(
        "sqlite", {"d": moment + timedelta(minutes=30)})["d"] == "2026-11-24 01:32:03.456789"
    assert isinstance(rows.message["received_at"], str)
    assert all(isinstance(row["at"], str) for row in rows.outcomes + rows.ledger)


def test_second_record_of_mixed_mail_leaves_the_message_row_alone() -> None:
    sql = _Sql(create_engine("sqlite://"))
    facts = MessageFacts(message={"fingerprint": "f2"}, outcomes=(), message_recorded=True)
    assert _rows(sql, facts).message is None
