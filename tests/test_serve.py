"""`sluice serve --role …` as real processes: each role serves only its part, /healthz per
role, and a graceful stop that lets a message in DATA finish while new connections are
refused. smtp-sink upstream, SQLite in a temporary folder, and PostgreSQL (tests/pg.py)."""

from __future__ import annotations

import json
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.test_diversion import rules_file
from tests.pg import PostgresServer, postgres, postgres_url  # noqa: F401  (fixtures)
from tests.postfix import DOC_LMTP_FILTER_OPTION, PostfixInstance, PostfixMissing
from tests.servers import SmtpSink, free_port, wait_for_port

DEPLOY_DOC = Path(__file__).resolve().parents[1] / "docs" / "deploy.md"
#: docs/deploy.md's content filter with two gateway nodes (Postfix 3.5 and later).
DEPLOY_FILTER_OPTION = "  -o content_filter=sluice-lmtp:{hops}\n"


def message(subject: str, to: str = "bob@example.com") -> bytes:
    return (f"From: Boss <boss@example.com>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@example.com>\r\n\r\n"
            "Hello,\r\nthe office is closed on Friday.\r\n").encode()


class Node:
    """`python -m sluice serve --role ROLES` with its own free ports."""

    def __init__(self, tmp: Path, roles: str, *args: str, name: str = "",
                 lmtp: bool = False, port: int = 0) -> None:
        self.name = name or roles.replace(",", "-")
        self.smtp, self.web, self.health = port or free_port(), free_port(), free_port()
        self.log = tmp / f"{self.name}.log"
        listen = f"{'lmtp://' if lmtp else ''}127.0.0.1:{self.smtp}"
        command = [sys.executable, "-m", "sluice", "serve", "--role", roles,
                   "--listen", listen, "--web-listen", f"127.0.0.1:{self.web}",
                   "--health-listen", f"127.0.0.1:{self.health}", "--hostname", "gw.test",
                   "--no-classify", *args]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def ready(self) -> Node:
        """Wait for the health listener: it starts after the node's other listeners."""
        deadline = time.monotonic() + 90
        while self.proc.poll() is None and time.monotonic() < deadline:
            try:
                wait_for_port(self.health, timeout=0.5)
                return self
            except TimeoutError:
                continue
        raise AssertionError(f"{self.name} did not start:\n{self.log.read_text()}")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture()
def nodes(tmp_path: Path) -> Iterator[Callable[..., Node]]:
    started: list[Node] = []

    def start(roles: str, *args: str, name: str = "", lmtp: bool = False,
              port: int = 0) -> Node:
        node = Node(tmp_path, roles, *args, name=name, lmtp=lmtp, port=port)
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


def get(port: int, path: str = "/healthz") -> tuple[int, Any]:
    """(status, JSON body, or the text when it is not JSON)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode()


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def outbox_states(data_dir: Path) -> list[str]:
    db = sqlite3.connect(data_dir / "sluice.db")
    try:
        return [state for (state,) in db.execute("select state from outbox_job")]
    finally:
        db.close()


def test_each_role_serves_only_its_part(nodes: Callable[..., Node], clean_sink: SmtpSink,
                                        tmp_path: Path) -> None:
    """Three nodes on one SQLite database: the gateway records a diverted message, the
    worker node publishes it, the web node serves the app; none serves another's part."""
    data = tmp_path / "data"
    rules = rules_file(tmp_path)  # ann and bob divert [FYI] mail to the space
    common = ("--data-dir", str(data), "--upstream", clean_sink.address, "--rules", str(rules))
    gateway = nodes("gateway", *common).ready()  # creates the schema before the others
    worker, web = nodes("worker", *common), nodes("web", *common)
    worker.ready(), web.ready()

    status, body = get(gateway.health)
    assert status == 200, body
    assert body["roles"] == ["gateway"]
    assert set(body["checks"]) == {"gateway", "database"}
    assert refused(gateway.web)
    with smtplib.SMTP("127.0.0.1", gateway.smtp, timeout=30) as client:
        client.sendmail("boss@example.com", ["ann@example.com", "cem@example.com"],
                        message("[FYI] Office closed"))
    assert len(clean_sink.wait_for(1)) == 1  # cem's copy; ann's goes to the space
    # Published by the worker node, not by the gateway node (it runs no worker).
    assert wait_until(lambda: outbox_states(data) == ["done"]), outbox_states(data)

    assert refused(worker.smtp) and refused(worker.web)
    assert wait_until(lambda: get(worker.health)[0] == 200)
    status, body = get(worker.health)
    assert body["roles"] == ["worker"], body
    checks = body["checks"]
    assert set(checks) == {"worker", "database"}
    assert checks["worker"]["outbox_pending"] == 0

    assert refused(web.smtp)
    status, body = get(web.web)  # the web app's own port answers the node's health
    assert status == 200 and body["roles"] == ["web"], body
    assert get(web.web, "/login")[0] == 200
    status, text = get(gateway.health, "/metrics")
    assert status == 200 and "sluice_messages_received_total" in str(text)

    for node in (gateway, worker, web):
        node.signal()
    assert [node.proc.wait(30) for node in (gateway, worker, web)] == [0, 0, 0]


def test_sigterm_lets_data_finish_and_refuses_new_connections(
        nodes: Callable[..., Node], clean_sink: SmtpSink, tmp_path: Path) -> None:
    grace = 20.0
    node = nodes("gateway,worker", "--data-dir", str(tmp_path / "data"), "--upstream",
                 clean_sink.address, "--shutdown-grace", str(grace)).ready()
    idle = smtplib.SMTP("127.0.0.1", node.smtp, timeout=30)
    idle.ehlo()
    client = smtplib.SMTP("127.0.0.1", node.smtp, timeout=30)
    client.ehlo()
    assert client.mail("boss@example.com")[0] == 250
    assert client.rcpt("bob@example.com")[0] == 250
    client.putcmd("data")
    assert client.getreply()[0] == 354
    content = message("Sent across a shutdown")
    client.send(content[:40])

    signalled = time.monotonic()
    node.signal()
    # At once: health says draining (the listener still answers), new connections refused.
    assert wait_until(lambda: get(node.health)[0] == 503, timeout=10)
    body = get(node.health)[1]
    assert body["status"] == "draining", body
    assert body["failing"] == {"gateway": "draining", "worker": "draining"}
    assert refused(node.smtp)
    assert idle.getreply()[0] == 421  # the idle session was told to come back later

    client.send(content[40:] + b".\r\n")
    code, reply = client.getreply()
    assert code == 250, reply
    assert client.docmd("MAIL FROM:<boss@example.com>")[0] in (421, -1)  # no new transaction
    assert node.proc.wait(grace + 5) == 0
    assert time.monotonic() - signalled < grace
    found = [m for m in clean_sink.wait_for(1) if b"Sent across a shutdown" in m.content]
    assert len(found) == 1 and found[0].rcpt_tos == ["bob@example.com"]
    for session in (idle, client):
        session.close()


def test_grace_is_enforced_and_a_second_signal_stops_at_once(
        nodes: Callable[..., Node], clean_sink: SmtpSink, tmp_path: Path) -> None:
    """A client stuck in DATA is answered 421 when the grace runs out (it still has the
    mail and retries); with a second signal the node does not wait at all."""
    limited = nodes("gateway", "--data-dir", str(tmp_path / "a"), "--upstream",
                    clean_sink.address, "--shutdown-grace", "2", name="limited")
    patient = nodes("gateway", "--data-dir", str(tmp_path / "b"), "--upstream",
                    clean_sink.address, "--shutdown-grace", "600", name="patient")
    stuck = []
    for node in (limited.ready(), patient.ready()):
        client = smtplib.SMTP("127.0.0.1", node.smtp, timeout=30)
        client.ehlo()
        client.mail("boss@example.com")
        client.rcpt("bob@example.com")
        client.putcmd("data")
        assert client.getreply()[0] == 354
        client.send(b"Subject: never finished\r\n\r\nhalf a mes")
        stuck.append(client)

    started = time.monotonic()
    limited.signal()
    assert stuck[0].getreply()[0] == 421
    assert limited.proc.wait(30) == 0
    assert time.monotonic() - started >= 2  # not cut before the grace

    patient.signal()
    assert wait_until(lambda: refused(patient.smtp), timeout=10)
    patient.signal()
    assert patient.proc.wait(30) == 1  # long before its 600 s grace
    assert stuck[1].getreply()[0] in (421, -1)
    assert not [m for m in clean_sink.messages() if b"never finished" in m.content]
    for client in stuck:
        client.close()


def _allow_connections(server: PostgresServer, url: str, allowed: bool) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres",
                         autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s", (name,))


def test_all_roles_on_postgres_report_the_database(
        nodes: Callable[..., Node], clean_sink: SmtpSink, tmp_path: Path,
        postgres: PostgresServer, postgres_url: str) -> None:  # noqa: F811
    node = nodes("all", "--data-dir", str(tmp_path / "data"), "--database-url", postgres_url,
                 "--upstream", clean_sink.address).ready()
    assert wait_until(lambda: get(node.web)[0] == 200), get(node.web)
    with smtplib.SMTP("127.0.0.1", node.smtp, timeout=30) as client:
        client.sendmail("boss@example.com", ["bob@example.com"], message("On PostgreSQL"))
    assert [m for m in clean_sink.wait_for(1) if b"On PostgreSQL" in m.content]

    _allow_connections(postgres, postgres_url, False)
    try:
        assert wait_until(lambda: get(node.web)[0] == 503), get(node.web)
        status, body = get(node.health)
        assert status == 503, body
        assert body["status"] == "failing" and "database" in body["failing"]
    finally:
        _allow_connections(postgres, postgres_url, True)
    assert wait_until(lambda: get(node.web)[0] == 200), get(node.web)
    node.signal()
    assert node.proc.wait(30) == 0


class TwoHopPostfix(PostfixInstance):
    """Debian's Postfix whose LMTP content filter names two gateway nodes, as
    docs/deploy.md shows it."""

    def __init__(self, relayhost: str) -> None:
        self.hops = [free_port(), free_port()]
        super().__init__(relayhost)

    def _write_config(self, uid: int, gid: int) -> None:
        super()._write_config(uid, gid)
        master = self.config_dir / "master.cf"
        single = DOC_LMTP_FILTER_OPTION.format(sluice_port=self.sluice_lmtp_port)
        hops = ",".join(f"[127.0.0.1]:{port}" for port in self.hops)
        text = master.read_text()
        assert single in text
        master.write_text(text.replace(single, DEPLOY_FILTER_OPTION.format(hops=hops)))


def test_the_documented_filter_line_is_the_tested_one() -> None:
    shown = DEPLOY_FILTER_OPTION.format(hops="[10.0.0.11]:10024,[10.0.0.12]:10024")
    assert shown in DEPLOY_DOC.read_text()


@pytest.mark.postfix
def test_postfix_moves_on_to_the_second_gateway_when_the_first_drains(
        nodes: Callable[..., Node], clean_sink: SmtpSink, tmp_path: Path) -> None:
    """Postfix tries the listed next hops in order: all mail goes to the first gateway
    node; once it stops (listener closed), the next delivery goes to the second. Both
    share one database; every message reaches the sink once."""
    try:
        postfix = TwoHopPostfix(clean_sink.address)
    except PostfixMissing as exc:
        pytest.fail(f"Postfix is needed for the @pytest.mark.postfix tests: {exc}")
    try:
        postfix.start()
        common = ("--data-dir", str(tmp_path / "data"), "--upstream", postfix.reinjection)
        # One after the other: the first creates the schema.
        first = nodes("gateway", *common, name="first", lmtp=True, port=postfix.hops[0]).ready()
        second = nodes("gateway", *common, name="second", lmtp=True, port=postfix.hops[1])
        second.ready()

        def send(subject: str) -> None:
            with smtplib.SMTP("127.0.0.1", postfix.public_lmtp_port, timeout=30) as client:
                client.sendmail("boss@example.com", ["bob@example.com"], message(subject))

        for number in range(3):
            send(f"before {number}")
        postfix.wait_until_idle(60)
        postfix.wait_for_log(rf"relay=127\.0\.0\.1\[127\.0\.0\.1\]:{postfix.hops[0]}")
        assert f":{postfix.hops[1]}," not in postfix.log()  # the list is tried in order
        first.signal()
        assert first.proc.wait(30) == 0
        for number in range(3):
            send(f"after {number}")
        postfix.wait_until_idle(60)
        log = postfix.log()
        assert log.count(f"127.0.0.1[127.0.0.1]:{postfix.hops[1]}, ") >= 3, postfix.log_tail()
        subjects = sorted(line for m in clean_sink.wait_for(6)
                          for line in m.content.decode().splitlines()
                          if line.startswith("Subject:"))
        assert subjects == sorted(f"Subject: {when} {n}" for when in ("before", "after")
                                  for n in range(3))
    finally:
        postfix.stop()
