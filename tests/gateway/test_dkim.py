"""A DKIM signature made before the relay still verifies after it (simple/simple: any changed
byte in the signed headers or body would break it)."""

from __future__ import annotations

import base64
import smtplib
import subprocess
from pathlib import Path

import dkim
import pytest

from tests.gateway.test_relay import sluice_received_removed
from tests.servers import GatewayThread, SmtpSink

MESSAGE = (
    b"From: Ann Example <ann@example.com>\r\nTo: team@example.com\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= and a long header line that goes on and on and on\r\n"
    b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <dkim-test@example.com>\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\n"
    + "Ünïcödé body with trailing spaces   \r\n".encode()
    + b".leading dot line\r\n\r\n\r\nlast line\r\n"
)


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    folder = tmp_path_factory.mktemp("dkim")
    private = folder / "private.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(private), "2048"], check=True,
                   capture_output=True)
    public_der = subprocess.run(["openssl", "rsa", "-in", str(private), "-pubout", "-outform",
                                 "DER"], check=True, capture_output=True).stdout
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public_der)
    return Path(private).read_bytes(), record


def test_dkim_signature_still_verifies_after_the_relay(relay: GatewayThread,
                                                       clean_sink: SmtpSink,
                                                       dkim_key: tuple[bytes, bytes]) -> None:
    private, record = dkim_key
    signature = dkim.sign(MESSAGE, b"sel", b"example.com", private,
                          canonicalize=(b"simple", b"simple"),
                          include_headers=[b"from", b"to", b"subject", b"date", b"message-id",
                                           b"content-type"])
    signed = signature + MESSAGE

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"sel._domainkey.example.com."
        return record

    assert dkim.verify(signed, dnsfunc=dns)
    with smtplib.SMTP("127.0.0.1", relay.port) as client:
        client.sendmail("ann@example.com", ["team@example.com"], signed)
    (message,) = clean_sink.wait_for(1)
    relayed = sluice_received_removed(message.content).replace(b"\n", b"\r\n")
    assert dkim.verify(relayed, dnsfunc=dns)
    # The check can fail: one changed body byte breaks the signature.
    assert not dkim.verify(relayed.replace(b"last line", b"last lime"), dnsfunc=dns)
