"""The transparent relay: what arrives upstream is what was sent, plus one Received line."""

from __future__ import annotations

import smtplib
import socket
import sqlite3
from pathlib import Path

import pytest

from sluice.core.parse import normalize_line_endings
from tests.servers import GatewayThread, SmtpSink, iter_corpus_messages

AWKWARD = {
    "plain": b"From: a@example.com\r\nTo: b@example.com\r\nSubject: plain\r\n"
             b"Message-ID: <plain@x>\r\n\r\nHello.\r\n",
    "eight_bit": "From: a@example.com\r\nSubject: Grüße aus Köln\r\nMessage-ID: <8bit@x>\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\n"
                 "Content-Transfer-Encoding: 8bit\r\n\r\nÄpfel, Öl und Übermut.\r\n"
                 .encode(),
    "latin1_raw": b"From: a@example.com\r\nSubject: latin-1\r\nMessage-ID: <l1@x>\r\n\r\n"
                  b"caf\xe9 cr\xe8me \xff\xfe\r\n",
    "long_lines": b"From: a@example.com\r\nSubject: long\r\nMessage-ID: <long@x>\r\n"
                  b"X-Long: " + b"h" * 3000 + b"\r\n\r\n" + b"x" * 5000 + b"\r\n"
                  + b"y" * 70000 + b"\r\n",
    "leading_dots": b"From: a@example.com\r\nSubject: dots\r\nMessage-ID: <dots@x>\r\n\r\n"
                    b".\r\n..\r\n.hidden\r\n...three\r\nend\r\n",
    "broken_mime": b"From: a@example.com\r\nSubject: broken\r\nMessage-ID: <broken@x>\r\n"
                   b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"nope\r\n\r\n"
                   b"--nope\r\nContent-Type: text/plain\r\n\r\nunterminated part\r\n"
                   b"--wrong--\r\n",
    "odd_headers": b"Subject:no-space\r\nX-Empty:\r\nX-Folded: a\r\n  b\r\n\tc\r\n"
                   b"From: =?utf-8?q?J=C3=BCrgen?= <j@example.com>\r\n\r\nbody\r\n",
    "no_body": b"From: a@example.com\r\nSubject: headers only\r\nMessage-ID: <nb@x>\r\n",
    # The data's first byte picks the reader: a dot, CR or LF goes line by line.
    "starts_with_dot": b".hidden first line\r\n..two dots\r\nSubject: dot\r\n\r\nbody\r\n",
    "starts_with_crlf": b"\r\nonly a body after an empty header block\r\n.\r\n",
    "starts_with_lf": b"\nbare LF first\r\n" + b"w" * 70000 + b"\r\nend\r\n",
}


def send(port: int, raw: bytes, sender: str = "a@example.com",
         rcpts: tuple[str, ...] = ("b@example.com",), **kw: object) -> dict[str, object]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        return client.sendmail(sender, list(rcpts), raw, **kw)  # type: ignore[arg-type]


def sluice_received_removed(content: bytes) -> bytes:
    """Drop Sluice's own Received header (the only thing it may add) from a dump."""
    lines = content.split(b"\n")
    assert lines[0].startswith(b"Received: from "), lines[0]
    i = 1
    while lines[i][:1] in (b"\t", b" "):
        i += 1
    assert b"(Sluice)" in b"\n".join(lines[:i])
    return b"\n".join(lines[i:])


def as_dumped(raw: bytes) -> bytes:
    """What smtp-sink writes for a message smtplib sent: smtplib ends the data with CRLF when
    the message does not, the relay makes line ends CRLF, smtp-sink writes them as LF."""
    if not raw.endswith(b"\r\n"):
        raw += b"\r\n"
    return normalize_line_endings(raw).replace(b"\r\n", b"\n")


@pytest.mark.parametrize("name", sorted(AWKWARD))
def test_awkward_message_arrives_byte_for_byte(relay: GatewayThread, clean_sink: SmtpSink,
                                               name: str) -> None:
    send(relay.port, AWKWARD[name])
    (message,) = clean_sink.wait_for(1)
    assert message.rcpt_tos == ["b@example.com"]
    assert sluice_received_removed(message.content) == as_dumped(AWKWARD[name])


def test_real_corpus_messages_arrive_unchanged(relay: GatewayThread,
                                               clean_sink: SmtpSink) -> None:
    paths = list(iter_corpus_messages(40))
    assert len(paths) == 40, "the shared corpus is missing"
    originals = {}
    for path in paths:
        raw = path.read_bytes()
        send(relay.port, raw, rcpts=(f"{path.name}@example.com",))
        originals[f"{path.name}@example.com"] = raw
    messages = clean_sink.wait_for(len(paths))
    assert len(messages) == len(paths)
    for message in messages:
        (rcpt,) = message.rcpt_tos
        assert sluice_received_removed(message.content) == as_dumped(originals[rcpt])


def test_empty_message_is_relayed(relay: GatewayThread, clean_sink: SmtpSink) -> None:
    from tests.gateway.test_limits import read_reply

    with socket.create_connection(("127.0.0.1", relay.port)) as sock:
        read_reply(sock)
        for command in (b"EHLO c.test", b"MAIL FROM:<a@example.com>", b"RCPT TO:<b@example.com>",
                        b"DATA"):
            sock.sendall(command + b"\r\n")
            read_reply(sock)
        sock.sendall(b".\r\n")
        assert read_reply(sock).startswith(b"250")
    (message,) = clean_sink.wait_for(1)
    assert sluice_received_removed(message.content) == b""


def test_bare_lf_and_bare_cr_are_normalised_to_crlf(relay: GatewayThread,
                                                     clean_sink: SmtpSink) -> None:
    raw = b"From: a@example.com\nSubject: bare\nMessage-ID: <bare@x>\n\nline1\nline2\rline3\r\n"
    send(relay.port, raw)
    (message,) = clean_sink.wait_for(1)
    assert sluice_received_removed(message.content) == (
        b"From: a@example.com\nSubject: bare\nMessage-ID: <bare@x>\n\nline1\nline2\nline3\n"
    )


def test_null_sender_is_relayed_as_null_sender(relay: GatewayThread,
                                               clean_sink: SmtpSink) -> None:
    send(relay.port, AWKWARD["plain"], sender="<>")
    (message,) = clean_sink.wait_for(1)
    assert message.mail_from == ""


def test_8bitmime_is_passed_on(relay: GatewayThread, clean_sink: SmtpSink) -> None:
    send(relay.port, AWKWARD["eight_bit"], mail_options=["BODY=8BITMIME"])
    (message,) = clean_sink.wait_for(1)
    assert sluice_received_removed(message.content) == as_dumped(AWKWARD["eight_bit"])


def test_smtputf8_is_refused_when_the_upstream_lacks_it(relay: GatewayThread,
                                                       clean_sink: SmtpSink) -> None:
    """smtp-sink does not offer SMTPUTF8; passing the mail on without it would be wrong.
    (The Postfix tests show SMTPUTF8 mail passing through an upstream that offers it.)"""
    raw = "From: jürgen@bücher.example\r\nSubject: ütf8\r\n\r\nÄ\r\n".encode()
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(relay.port, raw, sender="jürgen@bücher.example", rcpts=("zoë@example.com",),
             mail_options=["SMTPUTF8"])
    assert refused.value.smtp_code == 553
    assert b"5.6.7" in refused.value.smtp_error
    assert clean_sink.messages() == []


def test_retry_of_a_delivered_message_is_not_delivered_twice(relay: GatewayThread,
                                                             clean_sink: SmtpSink) -> None:
    send(relay.port, AWKWARD["plain"], rcpts=("b@example.com", "c@example.com"))
    send(relay.port, AWKWARD["plain"], rcpts=("b@example.com", "c@example.com", "d@example.com"))
    messages = clean_sink.wait_for(2)
    assert sorted(tuple(m.rcpt_tos) for m in messages) == [
        ("b@example.com", "c@example.com"), ("d@example.com",)]


def test_facts_are_recorded_without_body(relay: GatewayThread, clean_sink: SmtpSink,
                                         tmp_path: Path) -> None:
    raw = (b"From: Ann <ann@example.com>\r\nTo: b@example.com, c@example.com\r\n"
           b"Cc: d@example.com\r\nSubject: Re: numbers\r\nMessage-ID: <facts@x>\r\n"
           b"In-Reply-To: <parent@x>\r\nReferences: <root@x> <parent@x>\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nsecret body text\r\n"
           b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; "
           b"filename=q3.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n"
           b"--b--\r\n")
    send(relay.port, raw, rcpts=("b@example.com", "c@example.com"))
    clean_sink.wait_for(1)
    db = sqlite3.connect(tmp_path / "data" / "sluice.db")
    row = db.execute("select message_id, mail_from, header_from, rcpt_count, to_count, "
                     "cc_count, attachment_count, in_reply_to, thread_subject, reply_depth, "
                     "size from message").fetchone()
    assert row == ("<facts@x>", "a@example.com", "ann@example.com", 2, 2, 1, 1, "<parent@x>",
                   "numbers", 2, len(raw))
    outcomes = db.execute("select recipient, status from recipient_outcome order by recipient")
    assert outcomes.fetchall() == [("b@example.com", "delivered"), ("c@example.com", "delivered")]
    dump = b"".join(line for table in ("message", "recipient_outcome", "ledger")
                    for line in db.iterdump() if table in line).decode() if False else \
        "\n".join(db.iterdump())
    assert "secret body text" not in dump


def test_non_ascii_address_without_smtputf8_gets_a_clear_refusal(relay: GatewayThread) -> None:
    from tests.gateway.test_limits import read_reply

    with socket.create_connection(("127.0.0.1", relay.port)) as sock:
        read_reply(sock)
        replies = []
        for command in ("EHLO c.test", "MAIL FROM:<jürgen@example.com>",
                        "MAIL FROM:<a@example.com>", "RCPT TO:<zoë@example.com>"):
            sock.sendall(command.encode() + b"\r\n")
            replies.append(read_reply(sock)[:9])
    assert replies[1:] == [b"553 5.6.7", b"250 2.1.0", b"553 5.6.7"]
