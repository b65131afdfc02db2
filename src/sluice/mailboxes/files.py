"""Read mail from disk: maildirs (with Maildir++ sub-folders), mbox files, message files and
plain folders of message files, streaming, in bounded memory.

Directories are walked with `os.scandir` (never listed whole into memory) and mbox files are
split line by line, so memory does not grow with the mailbox. Keys: a maildir message is
`SOURCE|FOLDER|UNIQUE` (the unique part of its file name, which survives a move from new/ to
cur/ and flag changes), an mbox message `SOURCE|OFFSET`, any other file `SOURCE|PATH`.
Messages over the size limit are never read: `stat` says so first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sluice.mailboxes.items import (
    DEFAULT_MAX_MESSAGE_BYTES,
    NO_SUCH_PATH,
    UNREADABLE_FILE,
    DoneFilter,
    Fetched,
    Item,
    Unreadable,
    nothing_done,
    too_large,
)
from sluice.mailboxes.names import display_name, is_chosen

#: Keys asked of the done-filter at once (a bounded look-up per batch, not one per file).
KEY_BATCH = 500
_MAILDIR_SUBDIRS = ("new", "cur")
_INBOX = "INBOX"
_MBOX_START = b"From "
_P = TypeVar("_P", str, Path)
#: An mbox is read in pieces of at most this many bytes, so one endless line cannot fill memory.
_MAX_LINE_PIECE = 64 * 1024


def is_maildir(path: Path) -> bool:
    return path.is_dir() and any((path / sub).is_dir() for sub in _MAILDIR_SUBDIRS)


def is_mbox(path: Path) -> bool:
    """An mbox starts with a `From ` line; a message file never does."""
    try:
        with path.open("rb") as fh:
            return fh.read(5) == _MBOX_START
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class FileSource:
    """A maildir, mbox, message file or folder named on the command line."""

    path: Path
    label: str
    folders: tuple[str, ...] = ()
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES

    def read(self, done: DoneFilter = nothing_done) -> Iterator[Item]:
        path = self.path
        if not path.exists():
            yield Unreadable(f"{self.label}|missing", self.label, NO_SUCH_PATH)
        elif is_maildir(path):
            for folder, directory in self.maildir_folders():
                yield from self._maildir(folder, directory, done)
        elif path.is_dir():
            yield from self._batched(self._plain_files(path), done)
        else:
            yield from self._file(path, self.label, done)

    # --- maildir ---------------------------------------------------------------------------

    def maildir_folders(self) -> Iterator[tuple[str, Path]]:
        """INBOX (the maildir itself) and its Maildir++ sub-folders (`.Name`), as chosen."""
        if is_chosen(_INBOX, _INBOX.encode(), self.folders):
            yield _INBOX, self.path
        with os.scandir(os.fsencode(self.path)) as entries:
            subfolders = [(e.name[1:], Path(os.fsdecode(e.path))) for e in entries
                          if e.name.startswith(b".") and e.name not in (b".", b"..")
                          and e.is_dir()]
        for raw, directory in sorted(subfolders):
            name = display_name(raw)
            if is_maildir(directory) and is_chosen(name, raw, self.folders):
                yield name, directory

    def _maildir(self, folder: str, directory: Path, done: DoneFilter) -> Iterator[Item]:
        def candidates() -> Iterator[tuple[str, str, str]]:
            for sub in _MAILDIR_SUBDIRS:
                try:
                    entries = os.scandir(directory / sub)
                except OSError:
                    continue
                with entries:
                    for entry in entries:
                        if entry.name.startswith(".") or not entry.is_file():
                            continue
                        unique = entry.name.split(":", 1)[0]
                        key = f"{self.label}|{folder}|{unique}"
                        name = f"{self.label}/{folder}/{sub}/{entry.name}"
                        yield key, name, entry.path

        for key, name, path in _undone(candidates(), done):
            yield self._one_file(key, name, path, folder)

    def _one_file(self, key: str, name: str, path: str | Path, folder: str) -> Item:
        """One open, one fstat (the size check, and the size of the single read), no
        path objects: a maildir of small messages is read at tens of thousands a second."""
        try:
            with open(path, "rb", buffering=0) as fh:
                size = os.fstat(fh.fileno()).st_size
                if size > self.max_bytes:
                    return too_large(key, name, size, self.max_bytes)
                raw = fh.read(size + 1)
                if len(raw) > size:  # grew since the fstat: read the rest too
                    raw += fh.read()
                return Fetched(key, name, folder, raw)
        except OSError as exc:
            return Unreadable(key, name, UNREADABLE_FILE, exc.strerror or str(exc))

    # --- plain folders, message files, mbox -----------------------------------------------

    def _plain_files(self, folder: Path) -> Iterator[Path]:
        try:
            entries = os.scandir(folder)
        except OSError:
            return
        with entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    yield from self._plain_files(Path(entry.path))
                elif entry.is_file():
                    yield Path(entry.path)

    def _batched(self, files: Iterator[Path], done: DoneFilter) -> Iterator[Item]:
        """Files under a plain folder: an mbox among them is read message by message."""
        def candidates() -> Iterator[tuple[str, str, Path]]:
            for path in files:
                relative = path.relative_to(self.path).as_posix()
                name = f"{self.label.rstrip('/')}/{relative}"
                if is_mbox(path):
                    yield "", name, path  # an mbox: its messages have their own keys
                else:
                    yield f"{self.label}|{relative}", name, path

        pending: list[tuple[str, str, Path]] = []
        for candidate in candidates():
            if candidate[0] == "":
                yield from _undone_list(pending, done, self)
                pending = []
                yield from self._mbox(candidate[2], candidate[1], done)
                continue
            pending.append(candidate)
            if len(pending) >= KEY_BATCH:
                yield from _undone_list(pending, done, self)
                pending = []
        yield from _undone_list(pending, done, self)

    def _file(self, path: Path, name: str, done: DoneFilter) -> Iterator[Item]:
        if is_mbox(path):
            yield from self._mbox(path, name, done)
            return
        key = f"{self.label}|file"
        if key not in done([key]):
            yield self._one_file(key, name, path, "")

    def _mbox(self, path: Path, name: str, done: DoneFilter) -> Iterator[Item]:
        pending: list[Item] = []
        try:
            for item in _split_mbox(path, name, self.max_bytes):
                pending.append(item)
                if len(pending) >= KEY_BATCH:
                    yield from _drop_done(pending, done)
                    pending = []
        except OSError as exc:
            pending.append(Unreadable(f"{name}|open", name, UNREADABLE_FILE,
                                      exc.strerror or str(exc)))
        yield from _drop_done(pending, done)


def _undone(candidates: Iterator[tuple[str, str, _P]],
            done: DoneFilter) -> Iterator[tuple[str, str, _P]]:
    batch: list[tuple[str, str, _P]] = []
    for candidate in candidates:
        batch.append(candidate)
        if len(batch) >= KEY_BATCH:
            finished = set(done([key for key, _, _ in batch]))
            yield from (c for c in batch if c[0] not in finished)
            batch = []
    if batch:
        finished = set(done([key for key, _, _ in batch]))
        yield from (c for c in batch if c[0] not in finished)


def _undone_list(pending: list[tuple[str, str, Path]], done: DoneFilter,
                 source: FileSource) -> Iterator[Item]:
    for key, name, path in _undone(iter(pending), done):
        yield source._one_file(key, name, path, "")


def _drop_done(items: list[Item], done: DoneFilter) -> Iterator[Item]:
    if not items:
        return
    finished = set(done([item.key for item in items]))
    yield from (item for item in items if item.key not in finished)


def _split_mbox(path: Path, name: str, max_bytes: int) -> Iterator[Item]:
    """Messages of an mbox, split at every `From ` line as Python's `mailbox.mbox` does
    (the From_ line itself is not part of the message); an over-large one is not kept."""
    label = name
    with path.open("rb") as fh:
        offset = 0
        start = -1
        index = -1
        chunks: list[bytes] = []
        size = 0

        def finish() -> Item:
            key = f"{label}|{start}"
            shown = f"{label}#{index}"
            if size > max_bytes:
                return too_large(key, shown, size, max_bytes)
            return Fetched(key, shown, "", b"".join(chunks))

        at_line_start = True
        for line in iter(lambda: fh.readline(_MAX_LINE_PIECE), b""):
            starts = at_line_start and line.startswith(_MBOX_START)
            at_line_start = line.endswith(b"\n")
            if starts:
                if start >= 0:
                    yield finish()
                start, index, chunks, size = offset, index + 1, [], 0
            elif start >= 0:
                size += len(line)
                if size <= max_bytes:
                    chunks.append(line)
            offset += len(line)
        if start >= 0:
            yield finish()
