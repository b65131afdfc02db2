"""SMTP smuggling and STARTTLS command injection stay closed.

The end-of-data look-alikes of the SMTP smuggling research (SEC Consult 2023/2024 and the
scanners published with it), sent to the gateway every way its DATA reader can meet them: in
the middle of the data, at its very start (the line-by-line path), split over TCP segments,
across the reader's 64 KB buffer limit. Each must stay body text of one message upstream, and
the smuggled MAIL/RCPT must never act — also when the upstream is a Postfix that itself still
accepts bare LF (Debian's 3.7: smtpd_forbid_bare_newline=no), so that only the gateway's
normalisation stands between the sequence and a second message.
"""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

import pytest

from sluice.gateway.protocol import READ_LIMIT
from tests.gateway.conftest import StartGateway
from tests.gateway.test_limits import read_reply
from tests.postfix import PostfixInstance
from tests.servers import SmtpSink

#: End-of-data look-alikes: the twelve of the published research, then NUL and dot-stuffing
#: variants around them.
SMUGGLING_SEQUENCES = [
    b"\n.\n", b"\n.\r", b"\r.\n", b"\r.\r", b"\n.\r\n", b"\r.\r\n", b"\r\n.\r\r\n",
    b"\r\r\n.\r\r\n", b"\r\n\x00.\r\n", b"\r\n.\n", b"\r\n.\r", b"\r\n.\x00\r\n",
    b"\n\x00.\n", b"\n\x00.\r\n", b"\r\n.\x00\n", b"\n.\x00\r\n", b"\r\n.\r\x00\n",
    b"\r\n .\r\n", b"\r\n..\r\n", b"\n..\n", b"\r\n.\t\r\n", b"\r\n\r.\n",
]

SMUGGLED = (b"MAIL FROM:<admin@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n"
            b"From: admin@example.com\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n")


def smtp_session(port: int, data: bytes | list[bytes]) -> bytes:
    """Speak SMTP by hand so that the exact bytes reach the gateway; a list of pieces is
    sent as separate TCP segments, a moment apart."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert read_reply(sock).startswith(b"220")
        for command in (b"EHLO client.test", b"MAIL FROM:<a@example.com>",
                        b"RCPT TO:<b@example.com>", b"DATA"):
            sock.sendall(command + b"\r\n")
            read_reply(sock)
        for piece in [data] if isinstance(data, bytes) else data:
            sock.sendall(piece)
            if not isinstance(data, bytes):
                time.sleep(0.05)
        reply = read_reply(sock)
        sock.sendall(b"QUIT\r\n")
        return reply + read_reply(sock)


def assert_one_carrier(replies: bytes, sink: SmtpSink) -> None:
    """One 250, one message upstream, to the carrier's recipient, smuggled text inside."""
    assert replies.count(b"250 ") == 1, replies
    messages = sink.wait_for(1)
    time.sleep(0.3)  # a second message would have been written by now
    messages = sink.messages()
    assert len(messages) == 1, [m.rcpt_tos for m in messages]
    (message,) = messages
    assert message.rcpt_tos == ["b@example.com"] and message.mail_from == "a@example.com"
    assert b"RCPT TO:<victim@example.com>" in message.content


@pytest.mark.parametrize("sequence", SMUGGLING_SEQUENCES, ids=repr)
def test_smuggling_sequence_never_yields_a_second_message(
        start_gateway: StartGateway, clean_sink: SmtpSink, sequence: bytes) -> None:
    gw = start_gateway(upstream=clean_sink.address)
    data = (b"From: a@example.com\r\nSubject: carrier\r\n\r\nfirst" + sequence + SMUGGLED
            + b"\r\n.\r\n")
    assert_one_carrier(smtp_session(gw.port, data), clean_sink)


@pytest.mark.parametrize("sequence", [b".\n", b".\r", b".\r\r\n", b"\n.\n", b"\r.\r\n",
                                      b"\x00.\r\n", b"..\r\n"], ids=repr)
def test_smuggling_sequence_at_the_start_of_the_data(
        start_gateway: StartGateway, clean_sink: SmtpSink, sequence: bytes) -> None:
    """Data that starts with a dot, CR or LF goes through the line-by-line reader."""
    gw = start_gateway(upstream=clean_sink.address)
    data = sequence + SMUGGLED + b"\r\n.\r\n"
    assert_one_carrier(smtp_session(gw.port, data), clean_sink)


@pytest.mark.parametrize("sequence", [b"\n.\r\n", b"\r\n.\n", b"\r\n.\r\r\n"], ids=repr)
def test_smuggling_sequence_split_over_segments(
        start_gateway: StartGateway, clean_sink: SmtpSink, sequence: bytes) -> None:
    gw = start_gateway(upstream=clean_sink.address)
    head = b"From: a@example.com\r\nSubject: carrier\r\n\r\nfirst"
    pieces = [head] + [bytes([b]) for b in sequence] + [SMUGGLED, b"\r\n.", b"\r", b"\n"]
    assert_one_carrier(smtp_session(gw.port, pieces), clean_sink)


@pytest.mark.parametrize("shift", [-5, -3, -2, -1, 0, 1, 2])
def test_smuggling_sequence_across_the_read_buffer_limit(
        start_gateway: StartGateway, clean_sink: SmtpSink, shift: int) -> None:
    """The reader takes data in pieces of at most READ_LIMIT bytes: a look-alike that
    straddles two pieces (and a real terminator's first bytes at a piece end) stay apart."""
    gw = start_gateway(upstream=clean_sink.address)
    head = b"From: a@example.com\r\nSubject: carrier\r\n\r\n"
    filler = b"x" * (READ_LIMIT + shift - len(head))
    data = head + filler + b"\r\n.\r" + SMUGGLED + b"\r\n.\r\n"
    assert_one_carrier(smtp_session(gw.port, data), clean_sink)


def test_chunking_is_neither_offered_nor_accepted(start_gateway: StartGateway,
                                                  clean_sink: SmtpSink) -> None:
    """No BDAT: a BDAT chunk cannot end a message where DATA's reader would not."""
    gw = start_gateway(upstream=clean_sink.address)
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        assert read_reply(sock).startswith(b"220")
        sock.sendall(b"EHLO client.test\r\n")
        assert b"CHUNKING" not in read_reply(sock)
        sock.sendall(b"MAIL FROM:<a@example.com>\r\n")
        read_reply(sock)
        sock.sendall(b"RCPT TO:<b@example.com>\r\n")
        read_reply(sock)
        sock.sendall(b"BDAT 5 LAST\r\n")
        assert read_reply(sock)[:1] == b"5"
    assert clean_sink.messages() == []


@pytest.mark.postfix
def test_no_second_message_behind_a_postfix_that_accepts_bare_lf(
        start_gateway: StartGateway, clean_postfix: PostfixInstance,
        clean_sink: SmtpSink) -> None:
    """Every look-alike through the gateway into Postfix's re-injection smtpd (bare LF
    accepted there): Postfix must see exactly one message per transaction."""
    gw = start_gateway(upstream=clean_postfix.reinjection)
    for n, sequence in enumerate(SMUGGLING_SEQUENCES):
        data = (b"From: a@example.com\r\nSubject: carrier %d\r\n\r\nfirst" % n + sequence
                + SMUGGLED + b"\r\n.\r\n")
        replies = smtp_session(gw.port, data)
        assert replies.count(b"250 ") == 1, (sequence, replies)
    clean_sink.wait_for(len(SMUGGLING_SEQUENCES))
    clean_postfix.wait_until_idle()
    messages = clean_sink.messages()
    assert len(messages) == len(SMUGGLING_SEQUENCES), clean_postfix.log_tail()
    assert all(m.rcpt_tos == ["b@example.com"] for m in messages)
    assert all(b"RCPT TO:<victim@example.com>" in m.content for m in messages)
    assert "victim@example.com" not in clean_postfix.log()


def test_starttls_plaintext_injection_is_not_executed(
        start_gateway: StartGateway, clean_sink: SmtpSink,
        certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    gw = start_gateway(upstream=clean_sink.address, tls_cert=cert, tls_key=key)
    raw = socket.create_connection(("127.0.0.1", gw.port))
    assert read_reply(raw).startswith(b"220")
    raw.sendall(b"EHLO client.test\r\n")
    assert b"STARTTLS" in read_reply(raw)
    # The injected NOOP rides in the same packet as STARTTLS, before the handshake.
    raw.sendall(b"STARTTLS\r\nNOOP\r\n")
    assert read_reply(raw).startswith(b"220")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        tls = context.wrap_socket(raw, server_hostname="gw.test")
    except (ssl.SSLError, OSError):
        return  # refusing the handshake also keeps the injection out
    with tls:
        tls.sendall(b"EHLO client.test\r\n")
        reply = read_reply(tls)
        # Had the NOOP been executed, its "250 OK" would come before the EHLO reply.
        assert reply.startswith(b"250-"), reply
        assert b"250 OK" not in reply.split(b"\r\n")[0]
