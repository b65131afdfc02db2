"""Read messages from what a user names on the command line: files, mboxes, maildirs, folders.

A named file is one RFC 822 message whatever its name, unless it starts with `From ` (mbox);
a folder is a maildir when it has cur/ or new/, otherwise every file under it is read.
Messages are named by the path as given; an mbox message is `PATH#N` (N counts from 0).
"""

from __future__ import annotations

import mailbox
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

#: Separator between an mbox path and the index of a message in it.
MBOX_INDEX_SEP = "#"
_MAILDIR_SUBDIRS = ("new", "cur")


@dataclass(frozen=True, slots=True)
class Source:
    """One message's bytes and the name it is reported under."""

    name: str
    raw: bytes


def is_mbox(path: Path) -> bool:
    """An mbox starts with a `From ` line; nothing else does."""
    try:
        with path.open("rb") as fh:
            return fh.read(5) == b"From "
    except OSError:
        return False


def is_maildir(path: Path) -> bool:
    return path.is_dir() and any((path / sub).is_dir() for sub in _MAILDIR_SUBDIRS)


def read_mbox(path: Path, name: str) -> Iterator[Source]:
    box = mailbox.mbox(path, create=False)
    try:
        for index, key in enumerate(box.iterkeys()):
            yield Source(f"{name}{MBOX_INDEX_SEP}{index}", box.get_bytes(key))
    finally:
        box.close()


def read_file(path: Path, name: str | None = None) -> Iterator[Source]:
    shown = name if name is not None else str(path)
    if is_mbox(path):
        yield from read_mbox(path, shown)
    else:
        yield Source(shown, path.read_bytes())


def _files_under(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def read_maildir(folder: Path, name: str) -> Iterator[Source]:
    for sub in _MAILDIR_SUBDIRS:
        directory = folder / sub
        if directory.is_dir():
            for path in sorted(p for p in directory.iterdir() if p.is_file()):
                yield Source(f"{name.rstrip('/')}/{sub}/{path.name}", path.read_bytes())


def read_folder(folder: Path, name: str) -> Iterator[Source]:
    if is_maildir(folder):
        yield from read_maildir(folder, name)
        return
    for path in _files_under(folder):
        yield from read_file(path, f"{name.rstrip('/')}/{path.relative_to(folder).as_posix()}")


def read_paths(paths: Iterable[str]) -> Iterator[Source]:
    """Every message under the given paths, in a stable order."""
    for given in paths:
        path = Path(given)
        if path.is_dir():
            yield from read_folder(path, given)
        else:
            yield from read_file(path, given)
