"""The database goes away between the relay and the record, on PostgreSQL: a message whose
kept copies the upstream already has must not be answered 451 (the retry would deliver
them twice), and its posts must already be durable."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from aiosmtpd.controller import Controller

from tests.pg import PostgresServer, postgres, postgres_url  # noqa: F401  (fixtures)
from tests.scale.harness import DIVERTS, EXTERNAL, KEEPS, SENDER, rules_yaml
from tests.servers import GatewayThread, free_port, gateway_settings

MESSAGE = (f"From: <{SENDER}>\r\nTo: {DIVERTS}, {KEEPS}\r\nSubject: [div] record path\r\n"
           "Message-ID: <record-path@scale.test>\r\n\r\nbody\r\n").encode()


class StopsTheDatabase:
    """An upstream that accepts the message and, before answering, stops PostgreSQL."""

    def __init__(self, stop: Callable[[], None]) -> None:
        self.stop = stop
        self.received: list[list[str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(list(envelope.rcpt_tos))
        if len(self.received) == 1:
            await asyncio.to_thread(self.stop)
        return "250 2.0.0 queued"


def test_database_lost_after_relaying_mixed_mail_answers_250_with_the_posts_kept(
        tmp_path: Path, postgres: PostgresServer, postgres_url: str) -> None:  # noqa: F811
    upstream = StopsTheDatabase(postgres.stop_server)
    controller = Controller(upstream, hostname="127.0.0.1", port=free_port())
    controller.start()
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules_yaml())
    gateway = GatewayThread(gateway_settings(
        tmp_path, database_url=postgres_url, upstream=f"127.0.0.1:{controller.port}",
        rules_file=rules, classify=False, worker=False), hook=None)
    try:
        with smtplib.SMTP("127.0.0.1", gateway.port, timeout=60) as client:
            refused = client.sendmail(SENDER, [DIVERTS, KEEPS, EXTERNAL], MESSAGE)
    finally:
        postgres.start_server()
        gateway.stop()
        controller.stop()
    assert refused == {}  # 250: the upstream has the kept copies, the post was committed
    assert upstream.received == [[KEEPS, EXTERNAL]]
    dsn = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        jobs = conn.execute("SELECT destination, recipients FROM outbox_job").fetchall()
        ledger = conn.execute("SELECT recipient FROM ledger").fetchall()
    assert jobs == [("news", DIVERTS)]
    assert ledger == [(DIVERTS,)]  # a retry would still be told the post exists
