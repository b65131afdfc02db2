"""Two worker nodes on one PostgreSQL fire their daily digests at the same minute: each
user still gets one digest (the advisory lock in Gateway.send_digests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlmodel import Session

from sluice.core.tables_router import DigestItem
from sluice.gateway.server import Gateway
from tests.pg import postgres, postgres_url  # noqa: F401  (fixtures)
from tests.servers import SmtpSink, gateway_settings

USERS = ("ann@example.com", "bob@example.com", "cem@example.com")


def test_two_worker_nodes_send_each_digest_once(clean_sink: SmtpSink, tmp_path: Path,
                                                postgres_url: str) -> None:  # noqa: F811
    async def run() -> list[int]:
        nodes = [Gateway(gateway_settings(tmp_path / name, listen=[], classify=False,
                                          database_url=postgres_url,
                                          upstream=clean_sink.address))
                 for name in ("one", "two")]
        with Session(nodes[0].engine) as session:
            for number, user in enumerate(USERS * 2):
                session.add(DigestItem(user=user, fingerprint=f"f{number}", destination="news",
                                       subject=f"News {number}", sender="desk@example.com",
                                       url=f"http://sluice.test/p/{number}"))
            session.commit()
        try:
            return list(await asyncio.gather(*(node.send_digests() for node in nodes)))
        finally:
            for node in nodes:
                await node.stop()

    assert sum(asyncio.run(run())) == len(USERS)
    received = clean_sink.wait_for(len(USERS))
    assert sorted(rcpt for m in received for rcpt in m.rcpt_tos) == sorted(USERS)
