"""What a mailbox reader hands on: a message's bytes, or why a message could not be read.

Every item carries a `key` that names it stably across runs (a maildir's unique file name, an
mbox offset, an IMAP folder + UIDVALIDITY + UID), so an interrupted analysis resumes where it
stopped and counts nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

#: Messages larger than this are not read at all; they are skipped with a reason.
DEFAULT_MAX_MESSAGE_BYTES = 25 * 1024 * 1024

#: Given candidate keys, the ones already processed (so readers need not fetch them again).
DoneFilter = Callable[[Sequence[str]], Collection[str]]


def nothing_done(_keys: Sequence[str]) -> Collection[str]:
    return ()


@dataclass(frozen=True, slots=True)
class Fetched:
    """One message's bytes, its resume key and the name it is reported under."""

    key: str
    name: str
    folder: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A message (or a whole folder) that could not be read: `reason` groups, `detail` says."""

    key: str
    name: str
    reason: str
    detail: str = ""


Item = Fetched | Unreadable

#: Reasons, shared by every reader so that reports group them.
TOO_LARGE = "message larger than the size limit"
UNREADABLE_FILE = "file cannot be read"
NO_SUCH_PATH = "no such file or folder"
FOLDER_UNAVAILABLE = "folder cannot be opened"
FETCH_FAILED = "message cannot be fetched"


def too_large(key: str, name: str, size: int, limit: int) -> Unreadable:
    return Unreadable(key, name, TOO_LARGE, f"{size} bytes > {limit} bytes")
