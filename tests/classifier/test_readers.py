"""Readers: a named file is one message, mbox messages are PATH#N, maildirs and folders."""

from __future__ import annotations

import mailbox
from email import message_from_bytes
from pathlib import Path

from sluice.classifier.readers import MBOX_INDEX_SEP, read_paths
from sluice.core.parse import parse
from tests.classifier.conftest import CORPUS, labeled_sample

#: Plain RFC 822 files (the Enron part); SpamAssassin files start with an mbox `From ` line.
SAMPLE = [CORPUS / p for p, _ in labeled_sample(3) if p.startswith("enron")][:3]
MBOX_STYLE = next(
    CORPUS / p for p, _ in labeled_sample(40)
    if p.startswith("spamassassin") and (CORPUS / p).read_bytes().startswith(b"From ")
)


def test_named_file_is_one_message_whatever_its_name(tmp_path: Path) -> None:
    odd = tmp_path / "message.weird-extension"
    odd.write_bytes(SAMPLE[0].read_bytes())
    found = list(read_paths([str(odd)]))
    assert [s.name for s in found] == [str(odd)]
    assert found[0].raw == SAMPLE[0].read_bytes()


def test_mbox_messages_are_named_by_path_and_index(tmp_path: Path) -> None:
    box_path = tmp_path / "archive"
    box = mailbox.mbox(box_path)
    for path in SAMPLE:
        box.add(message_from_bytes(path.read_bytes()))
    box.close()
    found = list(read_paths([str(box_path)]))
    assert [s.name for s in found] == [f"{box_path}{MBOX_INDEX_SEP}{i}" for i in range(3)]
    subjects = [parse(p.read_bytes()).thread.normalized_subject for p in SAMPLE]
    assert [parse(s.raw).thread.normalized_subject for s in found] == subjects


def test_maildir_reads_new_and_cur(tmp_path: Path) -> None:
    box = mailbox.Maildir(tmp_path / "Maildir")
    keys = [box.add(mailbox.MaildirMessage(p.read_bytes())) for p in SAMPLE]
    box[keys[0]] = box.get_message(keys[0])  # still in new/
    moved = box.get_message(keys[1])
    moved.set_subdir("cur")
    box[keys[1]] = moved
    found = list(read_paths([str(tmp_path / "Maildir")]))
    assert len(found) == 3
    assert {n.split("/")[-2] for n in (s.name for s in found)} == {"new", "cur"}


def test_folder_is_read_recursively_without_hidden_files(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "one.eml").write_bytes(SAMPLE[0].read_bytes())
    (tmp_path / "a" / "b" / "2").write_bytes(SAMPLE[1].read_bytes())
    (tmp_path / "a" / ".hidden").write_bytes(b"not mail")
    found = list(read_paths([str(tmp_path / "a")]))
    assert [s.name for s in found] == [f"{tmp_path / 'a'}/b/2", f"{tmp_path / 'a'}/one.eml"]


def test_a_file_starting_with_from_line_is_an_mbox() -> None:
    found = list(read_paths([str(MBOX_STYLE)]))
    assert [s.name for s in found] == [f"{MBOX_STYLE}{MBOX_INDEX_SEP}0"]
    assert not found[0].raw.startswith(b"From ")
    assert message_from_bytes(found[0].raw)["Message-ID"]
