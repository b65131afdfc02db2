"""AUTH on both sides: inbound over STARTTLS against the users file, outbound to the upstream."""

from __future__ import annotations

import smtplib
import ssl
from pathlib import Path

import pytest

from sluice.gateway.auth import hash_password
from tests.gateway.conftest import StartGateway
from tests.servers import SmtpSink

MESSAGE = b"From: a@example.com\r\nSubject: auth\r\nMessage-ID: <auth@x>\r\n\r\nhi\r\n"


def _insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def test_auth_is_offered_only_after_starttls(start_gateway: StartGateway,
                                              clean_sink: SmtpSink,
                                              certificate: tuple[Path, Path],
                                              tmp_path: Path) -> None:
    cert, key = certificate
    users = tmp_path / "users"
    users.write_text(f"alice:{hash_password('s3cret')}\n")
    gw = start_gateway(upstream=clean_sink.address, tls_cert=cert, tls_key=key,
                       auth_users_file=users, allowed_networks=["192.0.2.0/24"])
    context = _insecure_context()
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        client.ehlo()
        assert not client.has_extn("auth")
        # Outside the allowed networks and not authenticated: no relaying.
        code, _ = client.mail("a@example.com")
        assert code == 530
        client.rset()
        client.starttls(context=context)
        client.ehlo()
        assert client.has_extn("auth")
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("alice", "wrong")
        client.login("alice", "s3cret")
        client.sendmail("a@example.com", ["b@example.com"],
                        b"Subject: authenticated\r\n\r\nhi\r\n")
    (message,) = clean_sink.wait_for(1)
    assert b"with ESMTPSA" in message.content


def test_upstream_starttls_and_auth(start_gateway: StartGateway, clean_sink: SmtpSink,
                                    certificate: tuple[Path, Path], tmp_path: Path) -> None:
    """Sluice A relays through Sluice B, which demands STARTTLS and AUTH from A."""
    cert, key = certificate
    users = tmp_path / "users"
    users.write_text(f"relay:{hash_password('right')}\n")
    b = start_gateway(upstream=clean_sink.address, tls_cert=cert, tls_key=key,
                      auth_users_file=users, allowed_networks=["192.0.2.0/24"],
                      data_dir=tmp_path / "b")
    a = start_gateway(upstream=f"127.0.0.1:{b.port}", upstream_starttls=True,
                      upstream_tls_verify=False, upstream_user="relay",
                      upstream_password="right", data_dir=tmp_path / "a")
    with smtplib.SMTP("127.0.0.1", a.port) as client:
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    (message,) = clean_sink.wait_for(1)
    assert b"with ESMTPSA" in message.content  # B saw TLS and AUTH

    wrong = start_gateway(upstream=f"127.0.0.1:{b.port}", upstream_starttls=True,
                          upstream_tls_verify=False, upstream_user="relay",
                          upstream_password="wrong", data_dir=tmp_path / "c")
    with smtplib.SMTP("127.0.0.1", wrong.port) as client:
        with pytest.raises(smtplib.SMTPDataError) as deferred:
            client.sendmail("a@example.com", ["b@example.com"], MESSAGE + b"again\r\n")
    assert deferred.value.smtp_code == 451
    assert len(clean_sink.messages()) == 1
