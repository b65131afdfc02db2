"""Turn what a person typed (a path or an IMAP URL) into a mailbox reader."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from sluice.mailboxes.files import FileSource
from sluice.mailboxes.imap import ImapSource, imap_password, is_imap_url, parse_imap_url
from sluice.mailboxes.items import DEFAULT_MAX_MESSAGE_BYTES, DoneFilter, Item


class MailSource(Protocol):
    """Anything that yields a mailbox's messages (and what it could not read), resumably."""

    @property
    def label(self) -> str: ...

    def read(self, done: DoneFilter = ...) -> Iterator[Item]: ...


def open_source(spec: str, *, folders: tuple[str, ...] = (),
                max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, ca_file: Path | None = None,
                password: str | None = None) -> MailSource:
    """A reader for `spec`: an imap:// or imaps:// URL, or a maildir, mbox, file or folder.

    The IMAP password is asked for here (environment or prompt) unless given.
    """
    if is_imap_url(spec):
        url = parse_imap_url(spec)
        return ImapSource(url, password if password is not None else imap_password(),
                          folders=folders, max_bytes=max_bytes, ca_file=ca_file)
    return FileSource(Path(spec), spec, folders=folders, max_bytes=max_bytes)
