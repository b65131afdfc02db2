"""`sluice watch` against a real Dovecot: IDLE, diversion through the outbox into the space,
moves that never delete, resume by UID after drops, restarts and a UIDVALIDITY change."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from sluice.core.db import make_engine
from sluice.core.settings import Settings
from sluice.gateway.watch import (
    Mailbox,
    WatchService,
    WatchSpec,
    first_position,
    imap_fingerprint,
    load_position,
    save_position,
    wire_name,
)
from sluice.mailboxes.imap import PASSWORD_ENV, parse_imap_url
from tests.dovecot import PASSWORD, USER, Dovecot, dovecot  # noqa: F401
from tests.servers import free_port, gateway_settings

OWNER = "ann@example.com"
DEADLINE = 60.0
RULES = (
    "internal_domains: [example.com]\n"
    "destinations:\n"
    "  team-space: {kind: space, channel: team-news}\n"
    "users:\n"
    "  ann@example.com:\n"
    '    - {match: {subject: "^\\\\[FYI\\\\]"}, action: divert, to: team-space}\n'
    '    - {match: {subject: "^\\\\[COPY\\\\]"}, action: copy, to: team-space}\n'
)
#: A webhook on a port nothing listens on (a fresh free port): the outbox must give up.
HOOK_RULES = (
    "internal_domains: [example.com]\n"
    "destinations:\n"
    "  dead-hook: {{kind: webhook, url: \"http://127.0.0.1:{port}/hook\", secret: s}}\n"
    "users:\n"
    "  ann@example.com:\n"
    '    - {{match: {{subject: "^\\\\[HOOK\\\\]"}}, action: divert, to: dead-hook}}\n'
)


def message(subject: str, tag: str) -> bytes:
    return (f"Return-Path: <boss@example.com>\r\nFrom: Boss <boss@example.com>\r\n"
            f"To: {OWNER}\r\nSubject: {subject}\r\nMessage-ID: <{tag}@example.com>\r\n"
            f"Date: Mon, 3 Jun 2024 09:00:00 +0000\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\nBody of {tag}.\r\n").encode()


class WatchThread:
    """A WatchService on its own event loop thread."""

    def __init__(self, settings: Settings, spec: WatchSpec) -> None:
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.service: WatchService | None = None
        self.error: BaseException | None = None
        ready = threading.Event()

        async def main() -> None:
            self.stop_event = asyncio.Event()
            self.service = WatchService(settings, spec)
            ready.set()
            await self.service.run(self.stop_event)

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(main())
            except BaseException as exc:  # reported to the test thread
                self.error = exc
            finally:
                ready.set()
                self.loop.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(60)
        if self.error:
            raise self.error

    @property
    def watcher(self) -> Any:
        assert self.service is not None
        return self.service.watcher

    def stop(self) -> None:
        if self.thread.is_alive() and self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(60)
        assert not self.thread.is_alive(), "the watcher did not stop"
        if self.error:
            raise self.error


def wait_until(check: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture()
def mailbox(dovecot: Dovecot) -> Dovecot:  # noqa: F811
    dovecot.clear()
    return dovecot


@pytest.fixture()
def setup(tmp_path: Path, mailbox: Dovecot) -> tuple[Settings, WatchSpec]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    settings = gateway_settings(
        tmp_path, classify=False, rules_file=rules, watch_idle_seconds=2.0,
        watch_poll_seconds=0.1, watch_reconnect_seconds=0.1, watch_reconnect_max_seconds=0.5)
    spec = WatchSpec(parse_imap_url(mailbox.url("INBOX")), PASSWORD, OWNER)
    return settings, spec


@pytest.fixture()
def start_watch(setup: tuple[Settings, WatchSpec]) -> Iterator[Callable[..., WatchThread]]:
    started: list[WatchThread] = []

    def start(**changes: Any) -> WatchThread:
        settings, spec = setup
        if changes:
            settings = settings.model_copy(update=changes)
        watch = WatchThread(settings, spec)
        started.append(watch)
        wait_until(lambda: watch.watcher.connections >= 1 or watch.error, "the first sync")
        return watch

    yield start
    for watch in started:
        watch.stop()


class Imap:
    """The test's own IMAP client: appends mail and looks at folders and flags."""

    def __init__(self, server: Dovecot) -> None:
        self.client = IMAPClient("127.0.0.1", port=server.port, ssl=False, timeout=30)
        self.client.login(USER, PASSWORD)
        self.delimiter = self.client.list_folders(directory="", pattern="")[0][1].decode()

    @property
    def diverted(self) -> str:
        return f"Sluice{self.delimiter}Diverted"

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        self.client.append(folder, raw)

    def folder(self, name: str) -> dict[str, tuple[bytes, ...]]:
        """Subject → flags of every message in a folder."""
        if not self.client.folder_exists(name):
            return {}
        self.client.select_folder(name, readonly=True)
        found = self.client.fetch(self.client.search("ALL"),
                                  ["FLAGS", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
        self.client.unselect_folder()
        return {data[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode().split(":", 1)[1].strip():
                tuple(data[b"FLAGS"]) for data in found.values()}

    def close(self) -> None:
        with contextlib.suppress(IMAPClientError, OSError):
            self.client.logout()


@pytest.fixture()
def imap(mailbox: Dovecot) -> Iterator[Imap]:
    client = Imap(mailbox)
    yield client
    client.close()


def query(data_dir: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(data_dir / "sluice.db")
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def outcomes(data_dir: Path) -> dict[str, list[tuple[str, str, str]]]:
    """Subject → every recorded (action, status, source) of it for the owner."""
    rows = query(data_dir, "select m.subject, o.action, o.status, m.source "
                           "from recipient_outcome o join message m on m.id = o.message_pk "
                           "where o.recipient = ?", OWNER)
    found: dict[str, list[tuple[str, str, str]]] = {}
    for subject, action, status, source in rows:
        found.setdefault(subject, []).append((action, status, source))
    return found


def posts(data_dir: Path) -> list[tuple[str, str, str]]:
    return sorted(query(data_dir, "select channel, subject, recipients from space_post"))


def handled(data_dir: Path, *subjects: str) -> Callable[[], bool]:
    return lambda: set(subjects) <= set(outcomes(data_dir))


SEEN = b"\\Seen"
DELETED = b"\\Deleted"


def test_new_mail_is_diverted_posted_and_moved_kept_mail_stays_unread(
        start_watch: Callable[..., WatchThread], imap: Imap, mailbox: Dovecot,
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    mailbox.add_messages([message("[FYI] before the watch began", "old")])
    start_watch()
    imap.append(message("[FYI] Office closed on Friday", "fyi"))
    imap.append(message("Lunch on Thursday?", "plain"))
    imap.append(message("[COPY] Minutes of the meeting", "copy"))
    wait_until(handled(data, "[FYI] Office closed on Friday", "Lunch on Thursday?",
                       "[COPY] Minutes of the meeting"), "three messages handled")
    wait_until(lambda: len(posts(data)) == 2, "two posts published by the worker")

    assert posts(data) == [("team-news", "[COPY] Minutes of the meeting", OWNER),
                           ("team-news", "[FYI] Office closed on Friday", OWNER)]
    seen = outcomes(data)
    assert seen["[FYI] Office closed on Friday"] == [("divert", "diverted", "imap")]
    assert seen["Lunch on Thursday?"] == [("deliver", "delivered", "imap")]
    assert seen["[COPY] Minutes of the meeting"] == [("copy", "delivered", "imap")]
    assert "[FYI] before the watch began" not in seen  # first start: only new mail

    inbox = imap.folder("INBOX")
    assert set(inbox) == {"[FYI] before the watch began", "Lunch on Thursday?",
                          "[COPY] Minutes of the meeting"}
    assert not any(SEEN in flags or DELETED in flags for flags in inbox.values())
    diverted = imap.folder(imap.diverted)
    assert list(diverted) == ["[FYI] Office closed on Friday"]
    assert SEEN not in diverted["[FYI] Office closed on Friday"]
    assert DELETED not in diverted["[FYI] Office closed on Friday"]
    assert imap.diverted in [name for _, _, name in imap.client.list_sub_folders()]

    # The owner moves the diverted message back: it stays (and is not recorded again).
    imap.client.select_folder(imap.diverted)
    imap.client.move(imap.client.search("ALL"), "INBOX")
    imap.client.unselect_folder()
    imap.append(message("Marker after the move back", "marker"))
    wait_until(handled(data, "Marker after the move back"), "the marker")
    assert "[FYI] Office closed on Friday" in imap.folder("INBOX")
    assert imap.folder(imap.diverted) == {}
    assert outcomes(data)["[FYI] Office closed on Friday"] == [("divert", "diverted", "imap")]
    assert len(posts(data)) == 2


def test_backlog_handles_the_newest_messages_already_there(
        start_watch: Callable[..., WatchThread], setup: tuple[Settings, WatchSpec],
        imap: Imap, mailbox: Dovecot, tmp_path: Path) -> None:
    mailbox.add_messages([message("[FYI] oldest", "b1"), message("[FYI] older", "b2"),
                          message("[FYI] newest", "b3")])
    settings, spec = setup
    watch = WatchThread(settings, WatchSpec(spec.url, spec.password, OWNER, backlog=2))
    try:
        wait_until(lambda: watch.watcher.connections >= 1, "the first sync")
        assert set(outcomes(tmp_path / "data")) == {"[FYI] older", "[FYI] newest"}
        assert list(imap.folder("INBOX")) == ["[FYI] oldest"]
    finally:
        watch.stop()


def test_dropped_connections_resume_by_uid_nothing_missed_nothing_twice(
        start_watch: Callable[..., WatchThread], mailbox: Dovecot, tmp_path: Path) -> None:
    data = tmp_path / "data"
    watch = start_watch()
    imap = Imap(mailbox)
    imap.append(message("[FYI] first", "d1"))
    wait_until(handled(data, "[FYI] first"), "the first message")

    # The server drops every connection of the user (the test's own too); mail goes on
    # arriving while the watcher reconnects.
    kicked = subprocess.run(["doveadm", "-c", str(mailbox.config), "kick", USER],
                            capture_output=True, text=True)
    assert kicked.returncode == 0, kicked.stderr
    imap.close()
    mailbox.add_messages([message("[FYI] during the drop", "d2"),
                          message("Kept during the drop", "d3")])
    wait_until(lambda: watch.watcher.connections >= 2, "a reconnection after the kick")
    wait_until(handled(data, "[FYI] during the drop", "Kept during the drop"),
               "the mail of the drop")
    assert watch.watcher.failures >= 1

    # The server restarts; mail arrives while it is down (written into the maildir).
    mailbox.stop()
    mailbox.add_messages([message("[FYI] while down", "d4"),
                          message("Kept while down", "d5")])
    mailbox.start()
    wait_until(handled(data, "[FYI] while down", "Kept while down"), "the mail of the outage")
    imap = Imap(mailbox)
    try:
        imap.append(message("[FYI] after the outage", "d6"))
        wait_until(handled(data, "[FYI] after the outage"), "mail after the outage")
        fyi = ["[FYI] after the outage", "[FYI] during the drop", "[FYI] first",
               "[FYI] while down"]
        wait_until(lambda: len(posts(data)) == len(fyi), "the posts")
        assert all(len(rows) == 1 for rows in outcomes(data).values())
        assert len(outcomes(data)) == 6
        assert [subject for _, subject, _ in posts(data)] == fyi
        assert sorted(imap.folder("INBOX")) == ["Kept during the drop", "Kept while down"]
        assert sorted(imap.folder(imap.diverted)) == fyi
    finally:
        imap.close()


def test_a_restarted_watcher_resumes_from_the_stored_uid(
        start_watch: Callable[..., WatchThread], imap: Imap, tmp_path: Path) -> None:
    data = tmp_path / "data"
    watch = start_watch()
    imap.append(message("[FYI] before the restart", "r1"))
    wait_until(handled(data, "[FYI] before the restart"), "the first message")
    watch.stop()
    imap.append(message("[FYI] while stopped", "r2"))
    imap.append(message("Plain while stopped", "r3"))
    start_watch()
    wait_until(handled(data, "[FYI] while stopped", "Plain while stopped"),
               "the mail that came while the watcher was stopped")
    assert all(len(rows) == 1 for rows in outcomes(data).values())
    ((validity, last_uid),) = query(data, "select uidvalidity, last_uid from watch_state")
    imap.client.select_folder("INBOX", readonly=True)
    assert validity == imap.client.folder_status("INBOX", [b"UIDVALIDITY"])[b"UIDVALIDITY"]
    assert last_uid == 3


def test_a_crash_between_the_commit_and_the_move_posts_once_and_moves(
        setup: tuple[Settings, WatchSpec], start_watch: Callable[..., WatchThread],
        imap: Imap, tmp_path: Path) -> None:
    """The watcher recorded (and posted) the message, then died before moving it."""
    data = tmp_path / "data"
    start_watch().stop()  # the folder's position is stored
    raw = message("[FYI] recorded, not moved", "crash")
    imap.append(raw)
    settings, spec = setup

    async def record_only() -> bool:
        service = WatchService(settings.model_copy(update={"worker": False}), spec)
        try:
            return await service.watcher.handle(raw)
        finally:
            await service.gateway.stop()

    # The watcher had noted the UID it was handling, recorded the message, then died.
    imap.client.select_folder("INBOX", readonly=True)
    (uid,) = imap.client.search("ALL")
    imap.client.unselect_folder()
    engine = make_engine(settings)
    stored = load_position(engine, spec.account, spec.folder)
    assert stored is not None
    save_position(engine, spec.account, spec.folder, replace(stored, pending_uid=uid))
    engine.dispose()
    assert asyncio.run(record_only()) is True
    assert list(imap.folder("INBOX")) == ["[FYI] recorded, not moved"]
    start_watch()
    wait_until(lambda: list(imap.folder(imap.diverted)) == ["[FYI] recorded, not moved"],
               "the move after the restart")
    wait_until(lambda: len(posts(data)) == 1, "the post")
    assert outcomes(data) == {"[FYI] recorded, not moved": [("divert", "diverted", "imap")]}
    assert query(data, "select count(*) from outbox_job") == [(1,)]
    assert imap.folder("INBOX") == {}


def test_a_changed_uidvalidity_rescans_only_the_mail_since_the_watch_began(
        start_watch: Callable[..., WatchThread], imap: Imap, mailbox: Dovecot,
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    (old,) = mailbox.add_messages([message("[FYI] old mail", "u0")])
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    watch = start_watch()
    imap.append(message("[FYI] moved before", "u1"))
    imap.append(message("Kept before", "u2"))
    wait_until(handled(data, "[FYI] moved before", "Kept before"), "the first two")
    before = query(data, "select uidvalidity from watch_state")[0][0]
    imap.close()

    # The folder's UID list is lost (restored from a backup, rebuilt): new UIDVALIDITY.
    mailbox.stop()
    for path in mailbox.maildir.iterdir():
        if path.name.startswith("dovecot") and path.is_file():
            path.unlink()
    time.sleep(1.1)  # UIDVALIDITY is a time in seconds: make sure the new one differs
    mailbox.add_messages([message("[FYI] after the change", "u3")])
    mailbox.start()
    wait_until(handled(data, "[FYI] after the change"), "the new message")
    wait_until(lambda: query(data, "select uidvalidity from watch_state")[0][0] != before,
               "the new UIDVALIDITY stored")
    assert watch.watcher.failures >= 1
    seen = outcomes(data)
    assert set(seen) == {"[FYI] moved before", "Kept before", "[FYI] after the change"}
    assert all(len(rows) == 1 for rows in seen.values())
    after = Imap(mailbox)
    try:
        assert set(after.folder("INBOX")) == {"[FYI] old mail", "Kept before"}
        assert set(after.folder(after.diverted)) == {"[FYI] moved before",
                                                      "[FYI] after the change"}
    finally:
        after.close()


def test_without_move_only_the_moved_uid_is_expunged(
        setup: tuple[Settings, WatchSpec], imap: Imap) -> None:
    """COPY + \\Deleted + UID EXPUNGE: a message the owner marked deleted stays."""
    imap.append(message("Marked deleted by the owner", "x1"), )
    imap.append(message("[FYI] to move", "x2"))
    imap.client.select_folder("INBOX")
    imap.client.add_flags([1], [DELETED])
    imap.client.unselect_folder()
    _, spec = setup
    box = Mailbox(spec)
    try:
        box.can_move = False
        box.move(2)
    finally:
        box.close()
    inbox = imap.folder("INBOX")
    assert list(inbox) == ["Marked deleted by the owner"]
    assert DELETED in inbox["Marked deleted by the owner"]
    diverted = imap.folder(imap.diverted)
    assert list(diverted) == ["[FYI] to move"]
    assert DELETED not in diverted["[FYI] to move"]


def test_a_destination_that_stays_down_puts_the_mail_back_once(
        start_watch: Callable[..., WatchThread], imap: Imap, tmp_path: Path) -> None:
    data = tmp_path / "data"
    rules = tmp_path / "hook-rules.yaml"
    rules.write_text(HOOK_RULES.format(port=free_port()))
    start_watch(outbox_deadline=0.5, rules_file=rules)
    imap.append(message("[HOOK] for a dead webhook", "h1"))
    wait_until(lambda: query(data, "select state from outbox_job") == [("fallback",)],
               "the outbox giving up")
    wait_until(lambda: "[HOOK] for a dead webhook" in imap.folder("INBOX"), "the copy back")
    inbox = imap.client
    inbox.select_folder("INBOX", readonly=True)
    (uid,) = inbox.search("ALL")
    back = inbox.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"]
    assert b"X-Sluice-Fallback: destination dead-hook unavailable" in back
    ledger = query(data, "select reply from ledger where fingerprint = ?",
                   imap_fingerprint(OWNER, back))
    assert ledger == [("fallback: put back into the mailbox",)]
    inbox.unselect_folder()
    imap.append(message("Plain after the fall-back", "h2"))
    wait_until(handled(data, "Plain after the fall-back"), "a later message")
    # The copy put back was not diverted again: one outcome, the original's.
    assert outcomes(data)["[HOOK] for a dead webhook"] == [("divert", "diverted", "imap")]
    assert list(imap.folder(imap.diverted)) == ["[HOOK] for a dead webhook"]


def test_the_command_runs_until_terminated(setup: tuple[Settings, WatchSpec], imap: Imap,
                                          mailbox: Dovecot, tmp_path: Path) -> None:
    settings, _ = setup
    log = tmp_path / "watch.log"
    env = {**os.environ, PASSWORD_ENV: PASSWORD, "SLUICE_WATCH_POLL_SECONDS": "0.1"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sluice.cli", "watch", mailbox.url("INBOX"),
             "--owner", OWNER, "--data-dir", str(tmp_path / "data"), "--no-classify",
             "--rules", str(settings.rules_file), "--hostname", "watch.test"],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until(lambda: query_ok(tmp_path / "data", "select last_uid from watch_state"),
                   "the watcher's first sync")
        imap.append(message("[FYI] through the command", "c1"))
        wait_until(lambda: posts(tmp_path / "data"), "the post", timeout=20)
        wait_until(lambda: list(imap.folder(imap.diverted)) == ["[FYI] through the command"],
                   "the move")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    assert code == 0, log.read_text()
    assert "following imap://analyst@127.0.0.1" in log.read_text()


def query_ok(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    try:
        return query(data_dir, sql)
    except sqlite3.OperationalError:  # the database or table is not there yet
        return []


def test_first_position_counts_present_mail_as_done_except_the_backlog() -> None:
    assert first_position(uidnext=10, existing=[3, 5, 9], backlog=0) == 9
    assert first_position(uidnext=12, existing=[3, 5, 9], backlog=0) == 11  # 10, 11 expunged
    assert first_position(uidnext=10, existing=[3, 5, 9], backlog=2) == 3
    assert first_position(uidnext=10, existing=[3, 5, 9], backlog=5) == 0


def test_folder_names_use_the_servers_separator_and_modified_utf7() -> None:
    assert wire_name("Sluice/Diverted", ".") == "Sluice.Diverted"
    assert wire_name("/Sluice//Umgeleitet/", "/") == "Sluice/Umgeleitet"
    assert wire_name("Sluice/Archüv", ".") == "Sluice.Arch&APw-v"
