"""The upstream client: pipelined and one-by-one transactions give the same answers, and the
content on the wire is what aiosmtplib would have sent."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings
from hypothesis import given
from hypothesis import strategies as st

from sluice.gateway.relay import Outgoing, UpstreamRelay
from sluice.gateway.smtp_client import (
    SmtpClientError,
    SmtpConnection,
    command_line,
    outbound_content,
)
from tests.servers import free_port

MESSAGE = b"From: a@example.com\r\nSubject: pipelined\r\n\r\n.a dotted line\r\nbody\r\n"


class Upstream:
    """A real SMTP server (aiosmtpd) that refuses senders starting with `refused` and
    recipients starting with `nobody`, and offers PIPELINING when asked to."""

    def __init__(self, pipelining: bool) -> None:
        self.pipelining = pipelining
        self.received: list[tuple[str, list[str], bytes]] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port,
                                     decode_data=False)
        self.controller.start()

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        if address.startswith("refused"):
            return "550 5.7.1 sender refused"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        if address.startswith("nobody"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes) and envelope.mail_from is not None
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 queued"

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture(params=[True, False], ids=["pipelining", "one-by-one"])
def upstream(request: pytest.FixtureRequest) -> Iterator[Upstream]:
    server = Upstream(pipelining=request.param)
    yield server
    server.stop()


def deliver(upstream: Upstream, *jobs: Outgoing) -> list[dict[str, Any]]:
    """Deliver `jobs` one after the other through one relay (its pool reuses the
    connection), then close it."""

    async def run() -> list[dict[str, Any]]:
        relay = UpstreamRelay("127.0.0.1", upstream.port, local_hostname="test", timeout=10)
        try:
            return [{rcpt: (reply.code, reply.text)
                     for rcpt, reply in (await relay.deliver(job)).items()} for job in jobs]
        finally:
            await relay.close()

    return asyncio.run(run())


def test_the_connection_sees_pipelining_exactly_when_offered(upstream: Upstream) -> None:
    async def run() -> bool:
        conn = await SmtpConnection.open("127.0.0.1", upstream.port, local_hostname="test",
                                         connect_timeout=5, reply_timeout=5)
        try:
            return conn.supports("pipelining")
        finally:
            await conn.quit()

    assert asyncio.run(run()) is upstream.pipelining


def test_accepted_and_refused_recipients_get_their_own_replies(upstream: Upstream) -> None:
    job = Outgoing("a@example.com", ("b@example.com", "nobody@example.com", "c@example.com"),
                   MESSAGE)
    (replies,) = deliver(upstream, job)
    assert replies["b@example.com"][0] == 250 and replies["c@example.com"][0] == 250
    assert replies["nobody@example.com"] == (550, "5.1.1 no such user")
    ((sender, rcpts, content),) = upstream.received
    assert (sender, rcpts) == ("a@example.com", ["b@example.com", "c@example.com"])
    assert content == MESSAGE  # dot-stuffed on the wire, unstuffed by the server


def test_refused_sender_then_the_same_connection_carries_the_next_message(
        upstream: Upstream) -> None:
    refused = Outgoing("refused@example.com", ("b@example.com", "c@example.com"), MESSAGE)
    fine = Outgoing("a@example.com", ("b@example.com",), MESSAGE)
    first, second = deliver(upstream, refused, fine)
    assert first == {"b@example.com": (550, "5.7.1 sender refused"),
                     "c@example.com": (550, "5.7.1 sender refused")}
    assert second["b@example.com"][0] == 250
    assert [r[:2] for r in upstream.received] == [("a@example.com", ["b@example.com"])]


def test_every_recipient_refused_sends_no_content(upstream: Upstream) -> None:
    job = Outgoing("a@example.com", ("nobody@example.com", "nobody2@example.com"), MESSAGE)
    after = Outgoing("a@example.com", ("b@example.com",), MESSAGE + b"again\r\n")
    first, second = deliver(upstream, job, after)
    assert first == {"nobody@example.com": (550, "5.1.1 no such user"),
                     "nobody2@example.com": (550, "5.1.1 no such user")}
    assert second["b@example.com"][0] == 250
    ((_, rcpts, content),) = upstream.received  # only the second message
    assert rcpts == ["b@example.com"] and content.endswith(b"again\r\n")


def test_a_closed_upstream_is_an_error_not_a_hang() -> None:
    port = free_port()

    async def run() -> None:
        await SmtpConnection.open("127.0.0.1", port, local_hostname="test",
                                  connect_timeout=2, reply_timeout=2)

    with pytest.raises(SmtpClientError):
        asyncio.run(run())


def test_control_characters_never_reach_a_command() -> None:
    with pytest.raises(ValueError):
        command_line(b"RCPT", b"TO:<a@example.com>\r\nDATA")
    assert command_line(b"MAIL", b"FROM:<>", b"SIZE=10") == b"MAIL FROM:<> SIZE=10\r\n"


@given(st.binary(max_size=400) | st.lists(st.sampled_from(
    [b".", b"\r", b"\n", b"\r\n", b"..", b"x", b"\r\n.\r\n", b"\n.\n", b" "]), max_size=40)
    .map(b"".join))
def test_outbound_content_is_what_aiosmtplib_sends(content: bytes) -> None:
    expected = PERIOD_REGEX.sub(b"..", normalize_message_line_endings(content)) + b".\r\n"
    assert outbound_content(content) == expected


def test_a_354_with_nobody_to_receive_is_ended_by_a_lone_dot() -> None:
    """RFC 2920 3.1: an upstream that answers the pipelined DATA with 354 although it refused
    every recipient gets a lone dot, never the content, and the refusals are reported."""
    received: list[bytes] = []
    script = {b"EHLO": b"250-scripted\r\n250 PIPELINING\r\n", b"MAIL": b"250 2.1.0 ok\r\n",
              b"RCPT": b"550 5.1.1 no such user\r\n", b"DATA": b"354 go ahead\r\n",
              b".\r\n": b"554 5.5.1 no valid recipients\r\n", b"QUIT": b"221 bye\r\n"}

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 scripted ESMTP\r\n")
        while line := await reader.readline():
            received.append(line)
            writer.write(script.get(line if line == b".\r\n" else line[:4].upper(), b""))
            if line.upper().startswith(b"QUIT"):
                break
        writer.close()

    async def run() -> tuple[Any, bool]:
        server = await asyncio.start_server(upstream, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            conn = await SmtpConnection.open("127.0.0.1", port, local_hostname="test",
                                             connect_timeout=5, reply_timeout=5)
            said = await conn.transaction(command_line(b"MAIL", b"FROM:<a@example.com>"),
                                          [command_line(b"RCPT", b"TO:<b@example.com>")],
                                          MESSAGE)
            usable = conn.is_connected
            await conn.quit()
            return said, usable
        finally:
            server.close()
            await server.wait_closed()

    said, usable = asyncio.run(run())
    assert said.recipients[0].code == 550 and said.data is None and said.final is None
    assert usable
    assert b"".join(received).endswith(b"DATA\r\n.\r\nQUIT\r\n")  # no content, a lone dot
    assert not any(b"pipelined" in line for line in received)
