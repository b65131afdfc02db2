"""A job the worker reaches only after its deadline (a worker that lagged or was down) falls
back to mail, and the header says why — not that the destination does not exist."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import Session

from sluice.core.db import init_schema, make_engine
from sluice.core.parse import parse
from sluice.core.settings import load_settings
from sluice.core.tables_router import Blob, OutboxJob
from sluice.router.blobs import BlobStore, blob_row
from sluice.router.destinations import SpaceDestination
from sluice.router.outbox import OutboxEntry, OutboxWorker
from sluice.router.post import build_post

RAW = (b"From: pat@example.com\r\nTo: team@example.com\r\nSubject: late\r\n"
       b"Message-ID: <late@example.com>\r\n\r\nnews\r\n")


def test_job_past_its_deadline_falls_back_saying_it_was_not_published_in_time(
        tmp_path: Path) -> None:
    engine = make_engine(load_settings(None, data_dir=tmp_path))
    init_schema(engine)
    blob = blob_row(RAW)
    post = build_post(parse(RAW), None, destination="team", fingerprint="f-late",
                      recipients=("alice@example.com",), base_url="http://sluice.test")
    entry = OutboxEntry(post, blob["sha256"], ("alice@example.com",), "pat@example.com",
                        datetime.now(UTC) - timedelta(seconds=1), blob)
    with Session(engine) as session:
        session.execute(Blob.__table__.insert().values(**blob))  # type: ignore[attr-defined]
        session.execute(OutboxJob.__table__.insert().values(  # type: ignore[attr-defined]
            **entry.row()))
        session.commit()
    delivered: list[tuple[tuple[str, ...], bytes]] = []

    async def fallback(mail_from: str, recipients: tuple[str, ...], content: bytes) -> set[str]:
        delivered.append((recipients, content))
        return set()

    worker = OutboxWorker(engine, BlobStore(engine),
                          {"team": SpaceDestination("team", "team", engine)}, fallback)
    assert asyncio.run(worker.run_once()) == 1
    ((recipients, content),) = delivered
    assert recipients == ("alice@example.com",)
    first_line = content.split(b"\r\n", 1)[0]
    assert first_line == (b"X-Sluice-Fallback: destination team unavailable (not published "
                          b"before its deadline); delivered as mail")
    assert content.endswith(RAW)
