"""The IMAP reader and `sluice analyze` against a real Dovecot on loopback."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from sluice.analyzer import Examiner, RunSpec, Setup, finish_run, run_analysis
from sluice.core.errors import ConfigError
from sluice.mailboxes.files import FileSource
from sluice.mailboxes.imap import (
    PASSWORD_ENV,
    ImapSource,
    imap_password,
    parse_imap_url,
)
from sluice.mailboxes.items import FOLDER_UNAVAILABLE, TOO_LARGE, Fetched, Item, Unreadable
from sluice.mailboxes.sources import MailSource
from sluice.reports.analysis_state import AnalysisState
from tests.dovecot import PASSWORD, USER, Dovecot, dovecot, dovecot_tls  # noqa: F401
from tests.mailboxes.fixture_mail import (
    MAX_BYTES,
    RULES,
    SETTINGS,
    good_messages,
    hostile_messages,
)

SETUP = Setup(rules_name="fixture rules", rules_text=RULES, classify=False)


def imap_source(server: Dovecot, folders: tuple[str, ...] = (), *, tls: bool = False,
                batch: int = 3) -> ImapSource:
    return ImapSource(parse_imap_url(server.url(tls=tls)), PASSWORD, folders=folders,
                      max_bytes=MAX_BYTES, ca_file=server.ca_file if server.tls else None,
                      batch=batch)


def analyze(sources: list[MailSource], state_path: Path) -> dict[str, Any]:
    spec = RunSpec(sources=tuple(s.label for s in sources), folders=(),
                   max_message_bytes=MAX_BYTES, setup=SETUP, settings=SETTINGS)
    state = AnalysisState(state_path)
    try:
        info, report = run_analysis(spec, sources, state, examiner=Examiner(SETUP))
        finish_run(state, info)
    finally:
        state.close()
    return report


def figures(report: dict[str, Any]) -> dict[str, Any]:
    """The report without what names the source (paths, URLs) or the time."""
    skipped = dict(report["skipped"], examples=len(report["skipped"]["examples"]))
    return {k: v for k, v in report.items()
            if k not in ("sources", "started", "finished", "skipped")} | {"skipped": skipped}


@pytest.fixture()
def filled(dovecot: Dovecot) -> Dovecot:  # noqa: F811
    dovecot.clear()
    good = good_messages()
    dovecot.add_messages(good[:4] + hostile_messages())
    dovecot.add_messages(good[4:], folder="Arch&APw-v")  # "Archüv"
    return dovecot


def read_all(source: ImapSource) -> list[Item]:
    return list(source.read())


def flags(server: Dovecot, folder: str) -> list[tuple[bytes, ...]]:
    with IMAPClient("127.0.0.1", port=server.port, ssl=False) as client:
        client.login(USER, PASSWORD)
        client.select_folder(folder, readonly=True)
        uids = client.search("ALL")
        assert uids
        return [data[b"FLAGS"] for data in client.fetch(uids, ["FLAGS"]).values()]


def test_analyze_over_imap_equals_analyze_of_the_same_maildir(
        filled: Dovecot, tmp_path: Path) -> None:
    over_imap = analyze([imap_source(filled)], tmp_path / "imap.sqlite")
    from_disk = analyze([FileSource(filled.maildir, "disk", max_bytes=MAX_BYTES)],
                        tmp_path / "disk.sqlite")
    assert over_imap["messages"] == 7
    assert over_imap["deliveries"] == 20
    assert figures(over_imap) == figures(from_disk)


def test_reading_marks_nothing_seen(filled: Dovecot) -> None:
    assert all(b"\\Seen" not in f for f in flags(filled, "INBOX"))
    items = read_all(imap_source(filled))
    assert sum(isinstance(i, Fetched) for i in items) == 7 + 2  # the too-large one is skipped
    assert all(b"\\Seen" not in f for f in flags(filled, "INBOX"))
    assert all(b"\\Seen" not in f for f in flags(filled, "Archüv"))


def test_messages_come_in_uid_order_in_batches(filled: Dovecot) -> None:
    items = [i for i in read_all(imap_source(filled, ("INBOX",), batch=2))]
    uids = [int(i.key.rsplit("|", 1)[1]) for i in items]
    assert uids == sorted(uids) == list(range(1, 8))


def test_chosen_folders_or_all(filled: Dovecot) -> None:
    everything = read_all(imap_source(filled))
    inbox = read_all(imap_source(filled, ("INBOX",)))
    archive = read_all(imap_source(filled, ("Archüv",)))
    assert len(everything) == 10
    assert (len(inbox), len(archive)) == (7, 3)
    assert {i.folder for i in archive if isinstance(i, Fetched)} == {"Archüv"}
    from_url = ImapSource(parse_imap_url(filled.url("Arch%C3%BCv")), PASSWORD,
                          max_bytes=MAX_BYTES)
    assert len(read_all(from_url)) == 3


def test_too_large_message_is_skipped_unfetched(filled: Dovecot) -> None:
    skipped = [i for i in read_all(imap_source(filled)) if isinstance(i, Unreadable)]
    assert [(s.reason, s.name.endswith(";UID=7")) for s in skipped] == [(TOO_LARGE, True)]


def test_folder_that_cannot_be_opened_is_reported_and_the_rest_read(
        filled: Dovecot, tmp_path: Path) -> None:
    # On disk a Maildir++ folder whose name is broken modified UTF-7 ("&AAA" is a NUL):
    # Dovecot lists it escaped, as "bad&-AAA" (read: "bad&AAA"), and refuses to open it.
    filled.add_messages(good_messages()[:1], folder="bad&AAA")
    items = read_all(imap_source(filled))
    broken = [i for i in items if isinstance(i, Unreadable) and i.reason == FOLDER_UNAVAILABLE]
    assert [b.name.rsplit("/", 1)[1] for b in broken] == ["bad&AAA"]
    assert sum(isinstance(i, Fetched) for i in items) == 9
    report = analyze([imap_source(filled)], tmp_path / "s.sqlite")
    assert report["skipped"]["reasons"][FOLDER_UNAVAILABLE] == 1
    assert report["messages"] == 7


def test_folder_with_an_8bit_name_on_disk(filled: Dovecot) -> None:
    # A folder named in Latin-1 bytes (not UTF-8, not modified UTF-7). The file reader shows
    # the bytes escaped; Dovecot renames it on its next LIST to modified UTF-7 with U+FFFD
    # for the bad byte and serves it under that name.
    latin1 = Path(os.fsdecode(bytes(filled.maildir) + b"/.caf\xe9"))
    for sub in ("cur", "new", "tmp"):
        (latin1 / sub).mkdir(parents=True)
    (latin1 / "new" / "1.M1.x").write_bytes(good_messages()[0])
    filled.chown()
    disk = FileSource(filled.maildir, "disk", max_bytes=MAX_BYTES)
    assert [name for name, _ in disk.maildir_folders()] == ["INBOX", "Archüv", "caf\\xe9"]
    assert sum(isinstance(i, Fetched) for i in disk.read()) == 10
    with IMAPClient("127.0.0.1", port=filled.port, ssl=False) as client:
        client.login(USER, PASSWORD)
        client.list_folders()  # Dovecot fixes the name here
    items = read_all(imap_source(filled, ("caf\ufffd",)))
    assert [(i.folder, isinstance(i, Fetched)) for i in items] == [("caf\ufffd", True)]


def test_imaps_with_a_trusted_self_signed_certificate(dovecot_tls: Dovecot,  # noqa: F811
                                                       tmp_path: Path) -> None:
    dovecot_tls.clear()
    dovecot_tls.add_messages(good_messages())
    report = analyze([imap_source(dovecot_tls, tls=True)], tmp_path / "s.sqlite")
    assert (report["messages"], report["deliveries"]) == (7, 20)
    plain = analyze([imap_source(dovecot_tls)], tmp_path / "p.sqlite")  # STARTTLS offered
    assert figures(plain) == figures(report)
    logins = [line for line in dovecot_tls.log().splitlines() if "Login: user=<" in line]
    assert logins and all(", TLS," in line for line in logins[-2:])


def test_untrusted_certificate_is_refused(dovecot_tls: Dovecot) -> None:  # noqa: F811
    import ssl

    source = ImapSource(parse_imap_url(dovecot_tls.url(tls=True)), PASSWORD)
    with pytest.raises(ssl.SSLError):
        list(source.read())


def test_url_parsing_and_password() -> None:
    url = parse_imaps = parse_imap_url("imaps://anna%40example.com@mail.example.com/INBOX")
    assert (url.host, url.port, url.user, url.tls, url.folder) == (
        "mail.example.com", 993, "anna@example.com", True, "INBOX")
    assert parse_imaps.label == "imaps://anna@example.com@mail.example.com:993"
    plain = parse_imap_url("imap://bob@localhost:1143")
    assert (plain.port, plain.tls, plain.folder) == (1143, False, "")
    for bad in ("imaps://host/INBOX", "imap://user:pw@host/", "http://u@h/", "imaps://u@/"):
        with pytest.raises(ConfigError):
            parse_imap_url(bad)
    assert imap_password({PASSWORD_ENV: "pw"}) == "pw"


def test_wrong_password_is_an_error(filled: Dovecot) -> None:
    from imapclient.exceptions import LoginError

    source = ImapSource(parse_imap_url(filled.url()), "wrong")
    with pytest.raises(LoginError):
        list(source.read())
