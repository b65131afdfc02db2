"""SMTP smuggling and STARTTLS command injection stay closed."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest

from tests.gateway.conftest import StartGateway
from tests.gateway.test_limits import read_reply
from tests.servers import SmtpSink

#: The twelve end-of-data look-alikes known from SMTP smuggling research.
SMUGGLING_SEQUENCES = [
    b"\n.\n", b"\n.\r", b"\r.\n", b"\r.\r", b"\n.\r\n", b"\r.\r\n", b"\r\n.\r\r\n",
    b"\r\r\n.\r\r\n", b"\r\n\x00.\r\n", b"\r\n.\n", b"\r\n.\r", b"\r\n.\x00\r\n",
]

SMUGGLED = (b"MAIL FROM:<admin@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n"
            b"From: admin@example.com\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n")


def smtp_session(port: int, data: bytes) -> bytes:
    """Speak SMTP by hand so that the exact bytes reach the gateway."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        assert read_reply(sock).startswith(b"220")
        for command in (b"EHLO client.test", b"MAIL FROM:<a@example.com>",
                        b"RCPT TO:<b@example.com>", b"DATA"):
            sock.sendall(command + b"\r\n")
            read_reply(sock)
        sock.sendall(data)
        reply = read_reply(sock)
        sock.sendall(b"QUIT\r\n")
        return reply + read_reply(sock)


@pytest.mark.parametrize("sequence", SMUGGLING_SEQUENCES, ids=repr)
def test_smuggling_sequence_never_yields_a_second_message(
        start_gateway: StartGateway, clean_sink: SmtpSink, sequence: bytes) -> None:
    gw = start_gateway(upstream=clean_sink.address)
    data = (b"From: a@example.com\r\nSubject: carrier\r\n\r\nfirst" + sequence + SMUGGLED
            + b"\r\n.\r\n")
    replies = smtp_session(gw.port, data)
    assert replies.count(b"250 ") == 1, replies
    messages = clean_sink.wait_for(1)
    assert len(messages) == 1
    (message,) = messages
    assert message.rcpt_tos == ["b@example.com"]
    # The smuggled commands arrived upstream as body text of the one message.
    assert b"RCPT TO:<victim@example.com>" in message.content


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
