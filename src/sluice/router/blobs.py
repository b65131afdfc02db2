"""Content-addressed blob store: each distinct file or message is stored once, durably.

Blobs are written (and fsynced) before the database row that names them is committed, so
a committed row never points at a missing blob.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:]

    def put_sync(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.exists():
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{id(data)}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return digest

    async def put(self, data: bytes) -> str:
        return await asyncio.to_thread(self.put_sync, data)

    def get(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()
