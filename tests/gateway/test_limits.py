"""Limits and protection: every limit is enforced with the reply a sending MTA expects."""

from __future__ import annotations

import select
import smtplib
import socket
import time

import pytest

from sluice.gateway.protocol import JUNK_COMMANDS
from tests.gateway.conftest import StartGateway
from tests.servers import SmtpSink

MESSAGE = b"From: a@example.com\r\nSubject: limits\r\nMessage-ID: <limits@x>\r\n\r\nbody\r\n"


def read_reply(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Read one complete (possibly multi-line) SMTP reply."""
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
        lines = data.split(b"\r\n")
        complete = [line for line in lines[:-1] if line]
        if complete and complete[-1][3:4] == b" ":
            return data


def test_oversized_message_gets_552_and_is_not_relayed(start_gateway: StartGateway,
                                                        clean_sink: SmtpSink) -> None:
    gw = start_gateway(upstream=clean_sink.address, max_message_size=10_000)
    big = MESSAGE + b"x" * 76 + b"\r\n" * 1 + (b"y" * 76 + b"\r\n") * 200
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        client.ehlo()
        client.mail("a@example.com")  # no SIZE=: the limit must hold after the data too
        client.rcpt("b@example.com")
        code, reply = client.data(big)
        assert (code, reply[:5]) == (552, b"5.3.4")
        # The session goes on: a message within the limit still passes.
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    assert len(clean_sink.wait_for(1)) == 1


def test_declared_size_over_the_limit_is_refused_at_mail(start_gateway: StartGateway,
                                                          clean_sink: SmtpSink) -> None:
    gw = start_gateway(upstream=clean_sink.address, max_message_size=10_000)
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        client.ehlo()
        assert b"SIZE 10000" in (client.ehlo_resp or b"")
        code, _ = client.mail("a@example.com", ["SIZE=20000"])
        assert code == 552


def test_excess_recipients_get_452_and_the_first_100_get_the_mail(
        start_gateway: StartGateway, clean_sink: SmtpSink) -> None:
    gw = start_gateway(upstream=clean_sink.address, max_recipients=100)
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        client.ehlo()
        client.mail("a@example.com")
        codes = [client.rcpt(f"r{i}@example.com") for i in range(105)]
        assert all(code == 250 for code, _ in codes[:100])
        assert all(code == 452 and msg.startswith(b"4.5.3") for code, msg in codes[100:])
        code, _ = client.data(MESSAGE)
        assert code == 250
    (message,) = clean_sink.wait_for(1)
    assert len(message.rcpt_tos) == 100


def test_recipient_limit_below_rfc_minimum_is_refused() -> None:
    from sluice.core.errors import ConfigError
    from sluice.core.settings import load_settings

    with pytest.raises(ConfigError, match="at least 100"):
        load_settings(None, max_recipients=50)


def test_sessions_past_the_cap_get_421(start_gateway: StartGateway,
                                       clean_sink: SmtpSink) -> None:
    gw = start_gateway(upstream=clean_sink.address, max_sessions=2)
    first = socket.create_connection(("127.0.0.1", gw.port))
    second = socket.create_connection(("127.0.0.1", gw.port))
    try:
        assert read_reply(first).startswith(b"220")
        assert read_reply(second).startswith(b"220")
        third = socket.create_connection(("127.0.0.1", gw.port))
        assert read_reply(third).startswith(b"421 4.7.0")
        third.close()
    finally:
        first.close()
        second.close()
    # Closed sessions free their slots.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with socket.create_connection(("127.0.0.1", gw.port)) as again:
            if read_reply(again).startswith(b"220"):
                break
        time.sleep(0.05)
    else:
        pytest.fail("slots were not released")


def test_client_outside_allowed_networks_is_refused(start_gateway: StartGateway,
                                                    clean_sink: SmtpSink) -> None:
    gw = start_gateway(upstream=clean_sink.address, allowed_networks=["127.0.0.2/32"],
                       listen=["0.0.0.0:0"])
    outsider = socket.create_connection(("127.0.0.1", gw.port), source_address=("127.0.0.1", 0))
    assert read_reply(outsider).startswith(b"554 5.7.1")
    outsider.close()
    insider = socket.create_connection(("127.0.0.1", gw.port), source_address=("127.0.0.2", 0))
    assert read_reply(insider).startswith(b"220")
    insider.close()


def test_idle_client_is_timed_out(start_gateway: StartGateway, clean_sink: SmtpSink) -> None:
    gw = start_gateway(upstream=clean_sink.address, command_timeout=1.0)
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        assert read_reply(sock).startswith(b"220")
        started = time.monotonic()
        reply = read_reply(sock, timeout=10)
        assert reply.startswith(b"421 4.4.2")
        assert sock.recv(100) == b""  # closed
        assert time.monotonic() - started < 5


def _open_data(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    assert read_reply(sock).startswith(b"220")
    for command in (b"EHLO client.test", b"MAIL FROM:<a@example.com>", b"RCPT TO:<b@example.com>",
                    b"DATA"):
        sock.sendall(command + b"\r\n")
        reply = read_reply(sock)
        assert reply[:1] in (b"2", b"3"), reply
    return sock


def test_slowloris_client_does_not_hold_a_session(start_gateway: StartGateway,
                                                  clean_sink: SmtpSink) -> None:
    gw = start_gateway(upstream=clean_sink.address, data_timeout=2.0, data_min_rate=16384)
    sock = _open_data(gw.port)
    started = time.monotonic()
    closed = False
    try:
        for _ in range(60):  # one byte every 0.2 s would take 12 s
            readable, _, _ = select.select([sock], [], [], 0.2)
            if readable:
                data = sock.recv(1024)
                closed = data == b"" or data.startswith(b"421")
                break
            try:
                sock.sendall(b"x")
            except OSError:
                closed = True
                break
    finally:
        sock.close()
    assert closed
    assert time.monotonic() - started < 6
    assert clean_sink.messages() == []


def test_large_message_on_a_slow_link_completes(start_gateway: StartGateway,
                                                clean_sink: SmtpSink) -> None:
    """The DATA deadline grows with the bytes received: 512 KB at 64 KB/s takes 8 s, far
    longer than the 2 s data_timeout, and still completes (scaled-down 25 MB at 64 kB/s)."""
    gw = start_gateway(upstream=clean_sink.address, data_timeout=2.0, data_min_rate=16384)
    sock = _open_data(gw.port)
    line = b"z" * 1022 + b"\r\n"
    body = MESSAGE + line * 512
    chunk = 16 * 1024
    for offset in range(0, len(body), chunk):
        sock.sendall(body[offset:offset + chunk])
        time.sleep(0.25)  # 64 KB/s
    sock.sendall(b".\r\n")
    assert read_reply(sock, timeout=30).startswith(b"250")
    sock.close()
    (message,) = clean_sink.wait_for(1)
    assert message.content.count(b"z" * 1022) == 512


def _connect_from(port: int, source: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), source_address=(source, 0))


def _relay_from(port: int, source: str, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, source_address=(source, 0), timeout=10) as client:
        client.sendmail("a@example.com", ["b@example.com"],
                        MESSAGE.replace(b"Subject: limits", b"Subject: " + subject.encode()))


def _closed_by_server(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server says until it closes the connection (the last reply)."""
    sock.settimeout(timeout)
    said = b""
    while chunk := sock.recv(4096):
        said += chunk
    return said


def test_one_client_address_cannot_take_every_session(start_gateway: StartGateway,
                                                       clean_sink: SmtpSink) -> None:
    """Slowloris from 127.0.0.2: an idle session, a command trickled a byte at a time and a
    DATA trickle. They hold only max_sessions_per_client slots, 127.0.0.3 still relays, and
    the timeouts close all three."""
    gw = start_gateway(upstream=clean_sink.address, max_sessions=6, max_sessions_per_client=3,
                       command_timeout=1.5, data_timeout=1.0, data_idle_timeout=1.0)
    held = [_connect_from(gw.port, "127.0.0.2") for _ in range(3)]
    refused = [_connect_from(gw.port, "127.0.0.2") for _ in range(5)]
    try:
        for sock in held:
            assert read_reply(sock).startswith(b"220")
        for sock in refused:
            assert read_reply(sock).startswith(b"421 4.7.0 Too many connections from your")
        _idle, trickle_command, trickle_data = held
        for command in (b"EHLO x", b"MAIL FROM:<a@example.com>", b"RCPT TO:<b@example.com>",
                        b"DATA"):
            trickle_data.sendall(command + b"\r\n")
            read_reply(trickle_data)
        started = time.monotonic()
        for byte in b"NOOP":  # never ends its line
            trickle_command.sendall(bytes([byte]))
            trickle_data.sendall(b"x")
            time.sleep(0.1)

        _relay_from(gw.port, "127.0.0.3", "another address")
        assert [m.content.count(b"another address") for m in clean_sink.wait_for(1)] == [1]

        # The timeouts end every slow session, each with a 421 before the close.
        for sock in held:
            assert b"421 4.4.2" in _closed_by_server(sock, timeout=10)
        assert time.monotonic() - started < 8
    finally:
        for sock in held + refused:
            sock.close()
    # Their slots are free again: the same address is admitted.
    deadline = time.monotonic() + 5
    while gw.gateway is not None and gw.gateway.handler.client_sessions and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    _relay_from(gw.port, "127.0.0.2", "after the timeouts")
    assert len(clean_sink.wait_for(2)) == 2


def test_without_a_per_client_limit_one_address_takes_every_session(
        start_gateway: StartGateway, clean_sink: SmtpSink) -> None:
    """The counter-check: what the per-client limit prevents."""
    gw = start_gateway(upstream=clean_sink.address, max_sessions=4, max_sessions_per_client=0)
    held = [_connect_from(gw.port, "127.0.0.2") for _ in range(4)]
    try:
        for sock in held:
            assert read_reply(sock).startswith(b"220")
        with _connect_from(gw.port, "127.0.0.3") as other:
            assert read_reply(other).startswith(b"421 4.7.0 Too many connections, try")
    finally:
        for sock in held:
            sock.close()


def test_ipv4_mapped_and_plain_addresses_count_as_one_client() -> None:
    from sluice.gateway.handler import client_address

    assert client_address(("::ffff:127.0.0.2", 25, 0, 0)) == client_address(("127.0.0.2", 26))
    assert client_address(("::1", 25, 0, 0)) == "::1"


@pytest.mark.parametrize("command", JUNK_COMMANDS)
def test_commands_that_move_no_mail_cannot_keep_a_session_for_ever(
        start_gateway: StartGateway, clean_sink: SmtpSink, command: str) -> None:
    gw = start_gateway(upstream=clean_sink.address, junk_command_limit=4)
    arg = {"VRFY": " b@example.com", "EXPN": " staff"}.get(command, "")
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        assert read_reply(sock).startswith(b"220")
        sock.sendall(b"EHLO client.example\r\n")
        assert read_reply(sock).startswith(b"250")
        for _ in range(4):
            sock.sendall(f"{command}{arg}\r\n".encode())
            assert not read_reply(sock).startswith(b"421")
        sock.sendall(f"{command}{arg}\r\n".encode())
        assert read_reply(sock).startswith(b"421 4.7.0")
        assert read_reply(sock) == b""  # closed by the gateway


def test_the_junk_count_starts_again_after_each_message(start_gateway: StartGateway,
                                                         clean_sink: SmtpSink) -> None:
    gw = start_gateway(upstream=clean_sink.address, junk_command_limit=3)
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        for n in range(3):
            for _ in range(3):
                assert client.noop()[0] == 250
            # Distinct messages: the ledger would take a resent identical one as a retry.
            client.sendmail("a@example.com", ["b@example.com"],
                            MESSAGE.replace(b"<limits@x>", f"<junk-{n}@x>".encode()))
        assert client.noop()[0] == 250
    assert len(clean_sink.wait_for(3)) == 3
