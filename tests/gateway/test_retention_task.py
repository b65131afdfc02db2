"""A gateway node with `retention_days` set prunes old history by itself (hourly, the first
time when it starts); without it, nothing but the ledger is pruned."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from sluice.core.errors import ConfigError
from sluice.core.tables import MessageRecord
from sluice.gateway.server import Gateway
from tests.core.test_retention import populate
from tests.servers import SmtpSink, gateway_settings


def messages_left(gateway: Gateway) -> int:
    with Session(gateway.engine) as session:
        return int(session.exec(select(func.count()).select_from(MessageRecord)).one()[0])


def run_node(tmp_path: Path, sink: SmtpSink, patience: float, **settings: object) -> int:
    """Start a node on old and recent history; the messages left once some were pruned, or
    after `patience` seconds (the hourly task's first round runs at start)."""
    async def run() -> int:
        gateway = Gateway(gateway_settings(tmp_path, classify=False, worker=False,
                                           upstream=sink.address, **settings))
        populate(gateway.engine, messages=2)  # 2 received 40 days ago, 2 two days ago
        await gateway.start()
        try:
            for _ in range(int(patience * 10)):
                if messages_left(gateway) != 4:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.3)
            return messages_left(gateway)
        finally:
            await gateway.stop(grace=0)

    return asyncio.run(run())


def test_a_node_with_retention_days_prunes_old_history(clean_sink: SmtpSink,
                                                       tmp_path: Path) -> None:
    # up to 30 s: a bound on a hang, not a speed check
    assert run_node(tmp_path, clean_sink, 30, retention_days=30) == 2


def test_without_retention_days_message_history_stays(clean_sink: SmtpSink,
                                                      tmp_path: Path) -> None:
    assert run_node(tmp_path, clean_sink, 1) == 4


def test_retention_under_a_day_is_refused_in_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 1 day"):
        gateway_settings(tmp_path, retention_days=0.5)
