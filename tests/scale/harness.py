"""Several Sluice nodes on one PostgreSQL under load, and the books kept to prove that
nothing acknowledged was lost or delivered twice.

Nodes are real `sluice gateway --no-worker` and `sluice worker` processes; clients are
smtplib threads that behave like an MTA (retry anything not answered 250, on either node)
and Postfix's smtp-source. Every message carries a unique Message-ID, so the sink's dump,
the outbox and the space's posts can be counted per message and recipient.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import signal
import smtplib
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import make_msgid
from pathlib import Path

from tests.servers import SmtpSink, free_port, require_binary, wait_for_port

SENDER = "sender@remote.test"
#: From: of the mail hal@ diverts to the webhook.
HOOK_SENDER = "robot@hooks.test"
#: Diverted by the policy ([div] subjects) to the space channel `news`.
DIVERTS = "ann@example.com"
#: Keeps [div] mail through an own deliver rule.
KEEPS = "keep@example.com"
#: Outside internal_domains: rules never apply.
EXTERNAL = "ext@remote.test"
#: Diverted to the webhook destination `hook` ([hook] subjects).
HOOKED = "hal@example.com"


def rules_yaml(webhook_url: str = "") -> str:
    """Policy: [div] mail from remote.test → space channel news; hal@'s own rule: mail
    from hooks.test → webhook (when given; other senders: no conflict with the policy);
    keep@ keeps everything, and smtp-source's third generated recipient (3src@) too."""
    hook = f'  hook: {{kind: webhook, url: "{webhook_url}"}}\n' if webhook_url else ""
    hook_rule = (f"  {HOOKED}:\n"
                 '    - {match: {sender_domain: hooks.test}, action: divert, to: hook}\n'
                 if webhook_url else "")
    return (
        "internal_domains: [example.com]\n"
        "destinations:\n"
        "  news: {kind: space, channel: news}\n" + hook +
        "policy:\n"
        '  - {match: {sender_domain: remote.test, subject: "^\\\\[div\\\\]"}, action: divert,'
        " to: news}\n"
        "users:\n" + hook_rule +
        f"  {KEEPS}:\n"
        "    - {action: deliver}\n"
        "  3src@example.com:\n"
        "    - {action: deliver}\n"
    )


# -- nodes ---------------------------------------------------------------------------------


class Node:
    """One `sluice gateway` or `sluice worker` process with its own folder and log."""

    def __init__(self, folder: Path, command: str, *args: str,
                 env: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.command = command
        self.port = free_port() if command == "gateway" else 0
        listen = ["--listen", f"127.0.0.1:{self.port}"] if self.port else []
        self.args = [sys.executable, "-m", "sluice.cli", command, *listen,
                     "--data-dir", str(folder / "data"), "--hostname", f"{folder.name}.test",
                     *args]
        self.env = {**os.environ, **(env or {})}
        self.log = folder / "node.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                         env=self.env)
        if self.port:
            try:
                wait_for_port(self.port, proc=self.proc)
            except (RuntimeError, TimeoutError) as error:
                raise RuntimeError(f"gateway not up: {self.log.read_text()[-2000:]}") from error
            return
        deadline = time.monotonic() + 60
        marker = self.log.stat().st_size if self.log.exists() else 0
        while time.monotonic() < deadline:  # the worker prints one line once it runs
            with open(self.log, "rb") as log:
                log.seek(marker)
                if b"outbox worker publishing to" in log.read():
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)
        raise TimeoutError("worker did not start")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        """SIGTERM and wait; returns the exit code (None if it had to be killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.terminate()
        try:
            return self.proc.wait(40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None


def start_nodes(folder: Path, args: list[str], *, workers: int,
                gateways: int = 2) -> tuple[list[Node], list[Node]]:
    """Gateway nodes (--no-worker), then worker nodes, one at a time: the first one to
    start creates the schema."""
    started = [Node(folder / f"gw-{chr(ord('a') + n)}", "gateway", *args, "--no-worker")
               for n in range(gateways)]
    return started, [Node(folder / f"worker-{n + 1}", "worker", *args) for n in range(workers)]


def node_args(database_url: str, upstream: str, rules: Path, *extra: str) -> list[str]:
    return ["--database-url", database_url, "--upstream", upstream, "--rules", str(rules),
            "--no-classify", *extra]


# -- letters and MTA-like clients -----------------------------------------------------------


@dataclass(frozen=True)
class Letter:
    uid: str  # the Message-ID without brackets
    rcpts: tuple[str, ...]
    content: bytes


def make_letters(count: int, tag: str, *, hook_share: float = 0.0,
                 seed: int = 7) -> list[Letter]:
    """A mix: a third stays mail for everyone, a third is diverted for ann (kept by keep@
    and ext@), a third goes to ann only (nothing relayed); `hook_share` of them also names
    hal@ under a [hook] subject (the webhook destination)."""
    rng = random.Random(seed)
    letters = []
    for n in range(count):
        uid = make_msgid(f"{tag}.{n}", "scale.test")[1:-1]
        kind = n % 3
        sender = SENDER
        rcpts: tuple[str, ...]
        if rng.random() < hook_share:
            subject, rcpts, sender = f"[hook] {tag} {n}", (HOOKED, KEEPS), HOOK_SENDER
        elif kind == 0:
            subject, rcpts = f"plain {tag} {n}", (DIVERTS, KEEPS, EXTERNAL)
        elif kind == 1:
            subject, rcpts = f"[div] {tag} {n}", (DIVERTS, KEEPS, EXTERNAL)
        else:
            subject, rcpts = f"[div] {tag} {n}", (DIVERTS,)
        body = f"Message {n} of run {tag}.\r\n" + "Some text for the body.\r\n" * rng.randint(
            1, 40)
        content = (f"From: Sender <{sender}>\r\nTo: {', '.join(rcpts)}\r\n"
                   f"Subject: {subject}\r\nMessage-ID: <{uid}>\r\n"
                   "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
                   f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}").encode()
        letters.append(Letter(uid, rcpts, content))
    return letters


@dataclass
class Ledger:
    """What the clients saw, per message: acknowledged, and every failed attempt."""

    acked: set[str] = field(default_factory=set)
    dropped: set[str] = field(default_factory=set)  # connection lost before any reply
    deferred: Counter[str] = field(default_factory=Counter)  # 4xx per reply code
    deferred_uids: set[str] = field(default_factory=set)
    refused: dict[str, str] = field(default_factory=dict)  # 5xx: must stay empty
    gave_up: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def acked_count(self) -> int:
        return len(self.acked)


class Mta:
    """Client threads that hand letters to the gateways the way an MTA does: a persistent
    connection each; anything not answered 250 is tried again, on the next node."""

    def __init__(self, ports: Callable[[], list[int]], threads: int,
                 retry_for: float = 120.0, pause: float = 0.0) -> None:
        """`pause`: seconds each thread waits between two messages (a paced load)."""
        self.ports = ports
        self.threads = threads
        self.pause = pause
        self.retry_for = retry_for
        self.ledger = Ledger()
        self._workers: list[threading.Thread] = []

    def send(self, letters: Iterable[Letter]) -> None:
        """Start sending in the background; `join` waits for the end."""
        queue = iter(list(letters))
        lock = threading.Lock()

        def next_letter() -> Letter | None:
            with lock:
                return next(queue, None)

        for index in range(self.threads):
            thread = threading.Thread(target=self._run, args=(next_letter, index), daemon=True)
            thread.start()
            self._workers.append(thread)

    def join(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._workers:
            thread.join(max(deadline - time.monotonic(), 0))
        self._workers = []

    def _run(self, next_letter: Callable[[], Letter | None], index: int) -> None:
        turn = itertools.count(index)
        client: smtplib.SMTP | None = None
        while (letter := next_letter()) is not None:
            give_up = time.monotonic() + self.retry_for
            while True:
                try:
                    if client is None:
                        ports = self.ports()
                        client = smtplib.SMTP("127.0.0.1", ports[next(turn) % len(ports)],
                                              timeout=60)
                except OSError:  # connection refused: that node is down
                    client = None
                else:
                    if self._attempt(client, letter):
                        break
                    _close(client)  # try again on the next node, as an MTA would
                    client = None
                if time.monotonic() > give_up:
                    with self.ledger.lock:
                        self.ledger.gave_up.add(letter.uid)
                    break
                time.sleep(0.2)
            if self.pause:
                time.sleep(self.pause)
        _close(client)

    def _attempt(self, client: smtplib.SMTP, letter: Letter) -> bool:
        """One transaction; True when it is settled (250, or refused for good)."""
        ledger = self.ledger
        try:
            client.sendmail(SENDER, list(letter.rcpts), letter.content)
        except smtplib.SMTPResponseException as exc:
            with ledger.lock:
                if 500 <= exc.smtp_code < 600:
                    ledger.refused[letter.uid] = f"{exc.smtp_code} {exc.smtp_error!r}"
                    return True
                ledger.deferred[str(exc.smtp_code)] += 1
                ledger.deferred_uids.add(letter.uid)
            return False
        except smtplib.SMTPRecipientsRefused as exc:
            with ledger.lock:
                if any(500 <= code < 600 for code, _ in exc.recipients.values()):
                    ledger.refused[letter.uid] = str(exc.recipients)
                    return True
                for code, _ in exc.recipients.values():
                    ledger.deferred[str(code)] += 1
                ledger.deferred_uids.add(letter.uid)
            return False
        except (smtplib.SMTPServerDisconnected, OSError):
            # Lost in the middle of a transaction: the node died (or was killed) while
            # this message was in flight.
            with ledger.lock:
                ledger.dropped.add(letter.uid)
            return False
        with ledger.lock:
            ledger.acked.add(letter.uid)
        return True


def _close(client: smtplib.SMTP | None) -> None:
    if client is None:
        return
    with contextlib.suppress(OSError):
        client.close()


@dataclass(frozen=True)
class SourceRun:
    """One smtp-source run: `count` messages, unique Message-Ids, recipients src@,
    2src@ (diverted for [div]) and 3src@ (keeps), all sent to one node."""

    port: int
    count: int
    subject: str
    sessions: int = 4

    def run(self, timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [require_binary("smtp-source"), "-s", str(self.sessions), "-m", str(self.count),
             "-f", SENDER, "-t", "src@example.com", "-r", "3", "-S", self.subject,
             "-M", "source.test", "-l", "400", f"127.0.0.1:{self.port}"],
            capture_output=True, timeout=timeout, check=False)


SOURCE_RCPTS = ("src@example.com", "2src@example.com", "3src@example.com")


# -- the books -----------------------------------------------------------------------------


@dataclass
class Sunk:
    """What the upstream received, per (message, recipient)."""

    normal: Counter[tuple[str, str]] = field(default_factory=Counter)
    fallback: Counter[tuple[str, str]] = field(default_factory=Counter)
    subjects: dict[str, str] = field(default_factory=dict)


def read_sink(sink: SmtpSink) -> Sunk:
    sunk = Sunk()
    for message in sink.messages():
        head = message.content.split(b"\n\n", 1)[0].decode("utf-8", "replace")
        headers: dict[str, str] = {}
        for line in head.split("\n"):
            name, sep, value = line.partition(":")
            if sep and not line[:1].isspace():
                headers.setdefault(name.strip().lower(), value.strip())
        uid = headers.get("message-id", "").strip("<>")
        sunk.subjects[uid] = headers.get("subject", "")
        target = sunk.fallback if "x-sluice-fallback" in headers else sunk.normal
        for rcpt in message.rcpt_tos:
            target[(uid, rcpt)] += 1
    return sunk


@dataclass
class Published:
    """The database's side: outbox jobs and space posts, per message."""

    jobs: dict[tuple[str, str], list[str]]  # (uid, destination) → states
    posts: Counter[tuple[str, str]]  # (uid, channel) → posts
    recorded: set[str] = field(default_factory=set)  # uids with a `message` facts row


def read_database(url: str) -> Published:
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        jobs: dict[tuple[str, str], list[str]] = {}
        for message_id, destination, state in conn.execute(
                "SELECT m.message_id, j.destination, j.state FROM outbox_job j "
                "JOIN message m ON m.fingerprint = j.fingerprint"):
            jobs.setdefault((message_id.strip("<>"), destination), []).append(state)
        posts: Counter[tuple[str, str]] = Counter(
            (message_id.strip("<>"), channel) for message_id, channel in conn.execute(
                "SELECT message_id, channel FROM space_post"))
        recorded = {message_id.strip("<>") for (message_id,) in conn.execute(
            "SELECT message_id FROM message")}
    return Published(jobs, posts, recorded)


def pending_jobs(url: str) -> int:
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM outbox_job WHERE state = 'pending'").fetchone()
    return int(row[0]) if row else 0


def wait_until_published(url: str, timeout: float) -> int:
    """Wait until no outbox job is pending; returns how many still are."""
    deadline = time.monotonic() + timeout
    left = pending_jobs(url)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = pending_jobs(url)
    return left


@dataclass(frozen=True)
class Expect:
    """Where one acknowledged message must end up."""

    uid: str
    keepers: tuple[str, ...]
    diverted: dict[str, tuple[str, ...]]  # destination → recipients


def expect_letter(letter: Letter) -> Expect:
    subject = letter.content.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0]
    diverted: dict[str, tuple[str, ...]]
    if subject.startswith(b"[div]"):
        keepers = tuple(r for r in letter.rcpts if r != DIVERTS)
        diverted = {"news": (DIVERTS,)} if DIVERTS in letter.rcpts else {}
    elif subject.startswith(b"[hook]"):
        keepers = tuple(r for r in letter.rcpts if r != HOOKED)
        diverted = {"hook": (HOOKED,)}
    else:
        keepers, diverted = letter.rcpts, {}
    return Expect(letter.uid, keepers, diverted)


def expect_source(uid: str, subject: str) -> Expect:
    if subject.startswith("[div]"):
        return Expect(uid, ("3src@example.com",),
                      {"news": ("src@example.com", "2src@example.com")})
    return Expect(uid, SOURCE_RCPTS, {})


@dataclass
class Books:
    """Every discrepancy found; empty lists mean the promise held."""

    missing: list[str] = field(default_factory=list)
    twice: list[str] = field(default_factory=list)
    twice_in_flight: list[str] = field(default_factory=list)
    wrongly_delivered: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    fallbacks: int = 0
    posts: int = 0
    webhook_posts: int = 0


def audit(expected: list[Expect], sunk: Sunk, published: Published, *,
          in_flight: set[str], webhook: Counter[str] | None = None,
          known: set[str] | None = None) -> Books:
    """Compare what must have happened with the sink's dump and the database.

    `in_flight`: messages whose connection dropped without a reply — the one case where
    a second copy is allowed (the node died after the upstream had it, before its ledger
    commit). `webhook`: posts the webhook receiver got, per message uid.
    """
    books = Books()
    for exp in expected:
        for rcpt in exp.keepers:
            n = sunk.normal[(exp.uid, rcpt)]
            if n == 0:
                books.missing.append(f"{exp.uid} → {rcpt} (mail)")
            elif n > 1:
                (books.twice_in_flight if exp.uid in in_flight and n == 2
                 else books.twice).append(f"{exp.uid} → {rcpt} ×{n}")
        for destination, rcpts in exp.diverted.items():
            states = published.jobs.get((exp.uid, destination), [])
            for rcpt in rcpts:
                if sunk.normal[(exp.uid, rcpt)]:
                    books.wrongly_delivered.append(f"{exp.uid} → {rcpt} delivered")
            if states != ["done"] and states != ["fallback"]:
                books.missing.append(f"{exp.uid} → {destination}: jobs {states}")
                continue
            fell_back = states == ["fallback"]
            if destination == "news":
                n = published.posts[(exp.uid, "news")]
                books.posts += n
                if n != (0 if fell_back else 1):
                    books.twice.append(f"{exp.uid}: {n} posts in news")
            elif webhook is not None:
                n = webhook[exp.uid]
                books.webhook_posts += n
                if n != (0 if fell_back else 1):
                    books.twice.append(f"{exp.uid}: {n} webhook posts, job {states}")
            for rcpt in rcpts:
                n = sunk.fallback[(exp.uid, rcpt)]
                books.fallbacks += n
                if n != (1 if fell_back else 0):
                    (books.missing if n == 0 else books.twice).append(
                        f"{exp.uid} → {rcpt}: {n} fall-back copies, job {states}")
    names = known if known is not None else {e.uid for e in expected}
    books.unknown = sorted({uid for uid, _ in [*sunk.normal, *sunk.fallback]} - names)
    return books
