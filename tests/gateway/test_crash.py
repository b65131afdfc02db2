"""SIGKILL in the middle of a transaction: the client retries and nobody gets two copies."""

from __future__ import annotations

import smtplib
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.gateway.test_limits import read_reply
from tests.servers import GatewayProcess, SmtpSink

MESSAGE = (b"From: a@example.com\r\nTo: b@example.com, c@example.com\r\n"
           b"Subject: crash test\r\nMessage-ID: <crash@x>\r\n\r\nbody\r\n")
RCPTS = ["b@example.com", "c@example.com"]


def test_killed_after_relay_before_reply_retry_is_not_delivered_again(
        tmp_path: Path, clean_sink: SmtpSink) -> None:
    """The worst moment: the upstream has the message, the client has no 250 yet."""
    gateway = GatewayProcess(tmp_path, "--upstream", clean_sink.address,
                             env={"SLUICE_TESTING": "1", "SLUICE_FAULT_PAUSE_BEFORE_REPLY": "30"})
    outcome: dict[str, BaseException | None] = {}

    def client() -> None:
        try:
            with smtplib.SMTP("127.0.0.1", gateway.port, timeout=60) as smtp:
                smtp.sendmail("a@example.com", RCPTS, MESSAGE)
            outcome["error"] = None
        except BaseException as exc:  # the connection drops when the gateway dies
            outcome["error"] = exc

    thread = threading.Thread(target=client)
    thread.start()
    try:
        assert len(clean_sink.wait_for(1, timeout=20)) == 1  # relayed and recorded
        time.sleep(0.3)
        gateway.kill()
        thread.join(20)
        assert isinstance(outcome["error"], smtplib.SMTPServerDisconnected | ConnectionError)
        # Restarted without the pause, the client's retry is answered from the ledger.
        gateway.env.pop("SLUICE_FAULT_PAUSE_BEFORE_REPLY")
        gateway.start()
        with smtplib.SMTP("127.0.0.1", gateway.port, timeout=60) as smtp:
            assert smtp.sendmail("a@example.com", RCPTS, MESSAGE) == {}
    finally:
        gateway.stop()
    time.sleep(0.5)
    messages = clean_sink.messages()
    assert len(messages) == 1
    assert sorted(messages[0].rcpt_tos) == RCPTS


def test_killed_during_data_retry_delivers_exactly_once(tmp_path: Path,
                                                        clean_sink: SmtpSink) -> None:
    gateway = GatewayProcess(tmp_path, "--upstream", clean_sink.address)
    try:
        sock = socket.create_connection(("127.0.0.1", gateway.port))
        assert read_reply(sock).startswith(b"220")
        for command in (b"EHLO c.test", b"MAIL FROM:<a@example.com>", b"RCPT TO:<b@example.com>",
                        b"RCPT TO:<c@example.com>", b"DATA"):
            sock.sendall(command + b"\r\n")
            read_reply(sock)
        sock.sendall(MESSAGE[: len(MESSAGE) // 2])
        time.sleep(0.3)
        gateway.kill()
        with pytest.raises(OSError):
            sock.sendall(MESSAGE[len(MESSAGE) // 2:] + b".\r\n")
            if not sock.recv(100):
                raise ConnectionResetError("closed")
        sock.close()
        assert clean_sink.messages() == []
        gateway.start()
        with smtplib.SMTP("127.0.0.1", gateway.port, timeout=60) as smtp:
            assert smtp.sendmail("a@example.com", RCPTS, MESSAGE) == {}
    finally:
        gateway.stop()
    messages = clean_sink.wait_for(1)
    assert len(messages) == 1
    assert sorted(messages[0].rcpt_tos) == RCPTS
