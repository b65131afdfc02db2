"""Content-addressed blob store: each distinct message is stored once, in the database.

The gateway writes a blob in the same transaction that records the message and its outbox
jobs, so one commit (one fsync) makes all of it durable; a committed job never names a
missing blob. Readers (the outbox's fall-back, the shared space) get it by its sha256.
"""

from __future__ import annotations

from sqlalchemy import Engine, select

from sluice.core.tables_router import Blob, blob_row

__all__ = ["BlobStore", "blob_row"]


class BlobStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, sha256: str) -> bytes:
        with self.engine.connect() as conn:
            data = conn.execute(select(Blob.data).where(  # type: ignore[call-overload]
                Blob.sha256 == sha256)).scalar_one_or_none()
        if data is None:
            raise KeyError(f"no blob {sha256}")
        return bytes(data)
