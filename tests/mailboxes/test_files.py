"""The file readers: maildir (Maildir++ folders, resume keys), mbox splitting, size limit."""

from __future__ import annotations

import mailbox
from pathlib import Path

from sluice.mailboxes.files import FileSource
from sluice.mailboxes.items import NO_SUCH_PATH, TOO_LARGE, Fetched, Unreadable
from tests.mailboxes.fixture_mail import good_messages, write_maildir


def write_mbox(path: Path, messages: list[bytes]) -> Path:
    box = mailbox.mbox(path)
    for raw in messages:
        box.add(raw)
    box.close()
    return path


def test_mbox_split_matches_pythons_mailbox(tmp_path: Path) -> None:
    raws = [*good_messages(), b"From: a@example.com\nTo: b@example.com\n\nFrom here on\n"]
    path = write_mbox(tmp_path / "box.mbox", raws)
    box = mailbox.mbox(path)
    expected = [box.get_bytes(key) for key in box.iterkeys()]
    box.close()
    items = list(FileSource(path, "box").read())
    assert all(isinstance(i, Fetched) for i in items)
    assert [i.raw.rstrip(b"\n") for i in items if isinstance(i, Fetched)] == [
        e.rstrip(b"\n") for e in expected]
    assert [i.name for i in items] == [f"box#{n}" for n in range(len(raws))]


def test_mbox_message_over_the_limit_is_skipped_not_kept(tmp_path: Path) -> None:
    big = b"From: a@example.com\nTo: b@example.com\n\n" + b"x" * 200_000 + b"\n"
    path = write_mbox(tmp_path / "box.mbox", [good_messages()[0], big, good_messages()[1]])
    items = list(FileSource(path, "box", max_bytes=50_000).read())
    assert [type(i).__name__ for i in items] == ["Fetched", "Unreadable", "Fetched"]
    assert isinstance(items[1], Unreadable) and items[1].reason == TOO_LARGE


def test_one_endless_line_is_read_in_pieces(tmp_path: Path) -> None:
    path = tmp_path / "box.mbox"
    line = b"y" * 1_000_000
    path.write_bytes(b"From x\nFrom: a@example.com\nTo: b@example.com\n\n" + line
                     + b"From not a separator inside the line\n")
    items = list(FileSource(path, "box").read())
    assert len(items) == 1 and isinstance(items[0], Fetched)
    assert line in items[0].raw


def test_maildir_keys_survive_a_move_to_cur_with_flags(tmp_path: Path) -> None:
    root = write_maildir(tmp_path / "md", good_messages()[:2])
    before = sorted(i.key for i in FileSource(root, "md").read())
    for path in (root / "new").iterdir():
        path.rename(root / "cur" / f"{path.name}:2,S")
    after = sorted(i.key for i in FileSource(root, "md").read())
    assert before == after and len(before) == 2


def test_maildir_folders_all_or_chosen(tmp_path: Path) -> None:
    root = write_maildir(tmp_path / "md", good_messages()[:2])
    write_maildir(root, good_messages()[2:5], folder="Arch&APw-v")
    source = FileSource(root, "md")
    assert [n for n, _ in source.maildir_folders()] == ["INBOX", "Archüv"]
    assert len(list(source.read())) == 5
    assert len(list(FileSource(root, "md", folders=("Archüv",)).read())) == 3
    assert len(list(FileSource(root, "md", folders=("inbox",)).read())) == 2


def test_done_keys_are_not_read_again(tmp_path: Path) -> None:
    root = write_maildir(tmp_path / "md", good_messages())
    first = [i.key for i in FileSource(root, "md").read()]
    asked: list[str] = []

    def done(keys: list[str]) -> set[str]:
        asked.extend(keys)
        return set(first[:4])

    rest = [i.key for i in FileSource(root, "md").read(done)]
    assert sorted(asked) == sorted(first)
    assert sorted(rest) == sorted(first[4:])


def test_missing_path_is_reported(tmp_path: Path) -> None:
    items = list(FileSource(tmp_path / "nowhere", "nowhere").read())
    assert [(type(i).__name__, getattr(i, "reason", "")) for i in items] == [
        ("Unreadable", NO_SUCH_PATH)]
