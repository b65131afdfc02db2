"""A stopping worker finishes the job in hand and releases its other claims at once, so
another node's worker need not wait for their lease to run out."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sluice.core.db import init_schema, make_engine
from sluice.core.post import Post
from sluice.core.settings import load_settings
from sluice.core.tables_router import DONE, PENDING
from sluice.router.blobs import BlobStore
from sluice.router.destinations import Published, WebhookDestination
from sluice.router.outbox import OutboxWorker
from tests.router.test_outbox_batch import jobs, no_fallback, queue
from tests.servers import HttpReceiver


def test_stop_mid_batch_releases_the_claims_not_worked(tmp_path: Path) -> None:
    engine = make_engine(load_settings(None, data_dir=tmp_path))
    init_schema(engine)
    queue(engine, ["one", "two", "three"])
    receiver = HttpReceiver()
    try:
        async def run() -> int:
            stop = asyncio.Event()

            class StopAfterOne(WebhookDestination):
                async def publish(self, post: Post, raw_sha256: str) -> Published:
                    published = await super().publish(post, raw_sha256)
                    stop.set()  # the signal arrives while the first job is in hand
                    return published

            worker = OutboxWorker(engine, BlobStore(engine),
                                  {"team": StopAfterOne("team", receiver.url)}, no_fallback)
            return await worker.run_once(stop)

        assert asyncio.run(run()) == 1
        state = jobs(engine)
        assert [(j.state, j.claimed_until) for j in state.values()] == [
            (DONE, None), (PENDING, None), (PENDING, None)]
        assert len(receiver.requests) == 1
    finally:
        receiver.stop()
        engine.dispose()
