"""When something fails, the client is told the truth and nothing is lost or doubled."""

from __future__ import annotations

import shutil
import smtplib
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluice.core.decision import RoutingDecision
from sluice.core.mail import Mail
from sluice.gateway.handler import GatewayHandler
from tests.gateway.conftest import StartGateway
from tests.servers import SmtpSink, free_port

MESSAGE = (b"From: a@example.com\r\nTo: b@example.com\r\nSubject: failures\r\n"
           b"Message-ID: <failures@x>\r\n\r\nbody\r\n")


@pytest.fixture()
def special_sink() -> Iterator[object]:
    """Start an smtp-sink with extra flags (e.g. rejecting the end of data)."""
    started: list[SmtpSink] = []
    folders: list[Path] = []

    def start(*flags: str) -> SmtpSink:
        folder = Path(tempfile.mkdtemp(prefix="sluice-sink-"))
        folder.chmod(0o755)
        folders.append(folder)
        sink = SmtpSink(folder / "dump", *flags)
        started.append(sink)
        return sink

    yield start
    for sink in started:
        sink.stop()
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def statuses(data_dir: Path) -> list[tuple[str, str]]:
    db = sqlite3.connect(data_dir / "sluice.db")
    try:
        return db.execute("select recipient, status from recipient_outcome").fetchall()
    finally:
        db.close()


def ledger(data_dir: Path) -> list[tuple[str]]:
    db = sqlite3.connect(data_dir / "sluice.db")
    try:
        return db.execute("select recipient from ledger").fetchall()
    finally:
        db.close()


def test_upstream_down_gives_451_and_nothing_is_recorded_as_delivered(
        start_gateway: StartGateway, tmp_path: Path) -> None:
    gw = start_gateway(upstream=f"127.0.0.1:{free_port()}", upstream_connect_timeout=2)
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        with pytest.raises(smtplib.SMTPDataError) as deferred:
            client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    assert deferred.value.smtp_code == 451
    assert statuses(tmp_path / "data") == [("b@example.com", "deferred")]
    assert ledger(tmp_path / "data") == []


def test_upstream_4xx_gives_451(start_gateway: StartGateway, special_sink: object,
                                tmp_path: Path) -> None:
    soft = special_sink("-r", ".")  # type: ignore[operator]
    gw = start_gateway(upstream=soft.address)
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        with pytest.raises(smtplib.SMTPDataError) as deferred:
            client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    assert deferred.value.smtp_code == 451
    assert ledger(tmp_path / "data") == []


def test_upstream_5xx_is_passed_back_as_the_same_5xx(
        start_gateway: StartGateway, special_sink: object, tmp_path: Path) -> None:
    hard = special_sink(  # type: ignore[operator]
        "-f", ".", "-B", "554 5.7.1 rejected by upstream policy")
    gw = start_gateway(upstream=hard.address)
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    assert refused.value.smtp_code == 554
    assert b"5.7.1 rejected by upstream policy" in refused.value.smtp_error
    assert statuses(tmp_path / "data") == [("b@example.com", "rejected")]


def test_upstream_refusing_every_recipient_passes_the_5xx_back(
        start_gateway: StartGateway, special_sink: object) -> None:
    hard = special_sink("-f", "RCPT", "-B", "550 5.1.1 no such user")  # type: ignore[operator]
    gw = start_gateway(upstream=hard.address)
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    assert refused.value.smtp_code == 550


def test_failing_pipeline_hook_means_relay_unchanged(start_gateway: StartGateway,
                                                     clean_sink: SmtpSink,
                                                     tmp_path: Path) -> None:
    async def broken_hook(mail: Mail, recipients: tuple[str, ...]) -> RoutingDecision:
        raise RuntimeError("classifier exploded")

    gw = start_gateway(hook=broken_hook, upstream=clean_sink.address)
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    (message,) = clean_sink.wait_for(1)
    assert message.content.endswith(MESSAGE.replace(b"\r\n", b"\n"))
    db = sqlite3.connect(tmp_path / "data" / "sluice.db")
    assert db.execute("select rule, status from recipient_outcome").fetchall() == [
        ("fail-open", "delivered")]


def test_handler_exception_answers_451_without_internal_detail(
        start_gateway: StartGateway, clean_sink: SmtpSink,
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def exploding_rcpt(*args: object) -> str:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(GatewayHandler, "handle_RCPT", exploding_rcpt)
    gw = start_gateway(upstream=clean_sink.address)
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        client.ehlo()
        client.mail("a@example.com")
        code, reply = client.rcpt("b@example.com")
    assert (code, reply) == (451, b"4.3.0 Local error, try again later")


def test_database_failure_before_relaying_gives_451_and_nothing_is_relayed(
        start_gateway: StartGateway, clean_sink: SmtpSink, tmp_path: Path) -> None:
    gw = start_gateway(upstream=clean_sink.address)
    db = sqlite3.connect(tmp_path / "data" / "sluice.db")
    db.execute("drop table ledger")
    db.commit()
    db.close()
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        with pytest.raises(smtplib.SMTPDataError) as deferred:
            client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    assert deferred.value.smtp_code == 451
    assert clean_sink.messages() == []


def test_gateway_refuses_to_start_with_weak_durability(tmp_path: Path) -> None:
    from sluice.core.errors import ConfigError
    from sluice.core.settings import load_settings

    with pytest.raises(ConfigError, match="synchronous"):
        load_settings(None, data_dir=tmp_path, sqlite_synchronous="NORMAL")

