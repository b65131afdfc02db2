"""SMTP replies as values, so per-recipient outcomes can be combined and recorded."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    def __str__(self) -> str:
        lines = self.text.splitlines() or [""]
        # A multi-line upstream reply becomes one line: the client sees one status.
        return f"{self.code} {' '.join(line.strip() for line in lines)}".strip()


ACCEPTED = Reply(250, "2.0.0 OK")
DUPLICATE = Reply(250, "2.0.0 OK (already delivered)")
UPSTREAM_UNAVAILABLE = Reply(451, "4.4.1 Upstream unavailable, try again later")
LOCAL_ERROR = Reply(451, "4.3.0 Local error, try again later")
STORAGE_UNAVAILABLE = Reply(451, "4.3.0 Cannot record the message now, try again later")
