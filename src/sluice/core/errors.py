"""One exception tree for Sluice; each error knows the SMTP reply it maps to.

    SluiceError
     ├── TemporaryError        → 4xx, the sender retries (upstream down, database busy)
     │    └── StorageUnavailable
     ├── PermanentError        → 5xx, the sender bounces (upstream said 5xx, bad input)
     └── ConfigError           → refuse to start, never reaches a client

Decisions ("divert", "deliver") are values, never exceptions.
"""

from __future__ import annotations


class SluiceError(Exception):
    """Base of every error Sluice raises on purpose."""


class ConfigError(SluiceError):
    """Settings that would be unsafe or cannot work; raised at start-up."""


class ReplyError(SluiceError):
    """An error that becomes an SMTP reply to the client."""

    code: int = 451
    enhanced: str = "4.3.0"

    def __init__(self, message: str, *, code: int | None = None, enhanced: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        if enhanced is not None:
            self.enhanced = enhanced

    @property
    def reply(self) -> str:
        return f"{self.code} {self.enhanced} {self}"


class TemporaryError(ReplyError):
    code = 451
    enhanced = "4.3.0"


class StorageUnavailable(TemporaryError):
    """The database cannot record right now; nothing may be acknowledged."""

    enhanced = "4.3.0"


class PermanentError(ReplyError):
    code = 554
    enhanced = "5.3.0"
