"""smtp_client: one connection to the upstream MTA, with PIPELINING (RFC 2920).

aiosmtplib sends MAIL, each RCPT and DATA one at a time and waits for each reply: four
round trips per message, each a socket write that wakes the upstream and a wake-up of the
event loop here. Postfix, smtp-sink and most MTAs advertise PIPELINING; with it the
envelope and DATA go out in one write and the content in a second, and the relay's CPU per
message drops (docs/performance.md, "Session 6"). Without the extension the
commands go one at a time, as before.

Outbound content is normalised as aiosmtplib did it: lone CR and LF become CRLF, the
content ends with CRLF, lines starting with a dot get a second one, so no end-of-data
sequence in the content can reach the upstream as a second message.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
from collections.abc import Sequence
from typing import NamedTuple

#: Longest reply line accepted, and longest whole (multi-line) reply.
MAX_REPLY_LINE = 8192
MAX_REPLY = 4 * MAX_REPLY_LINE
#: Bytes that may never appear in a command argument (CR/LF/NUL would inject commands).
_CONTROLS = re.compile(rb"[\x00-\x1f\x7f]")
_BARE_LINE_ENDS = re.compile(rb"\r\n|\n|\r(?!\n)")


class SmtpClientError(Exception):
    """The connection failed, timed out or the upstream answered something that is not
    SMTP: nothing more is known about the transaction in hand."""


class ConnectionClosed(SmtpClientError):
    """The upstream closed the connection (or reset it) before answering."""


class SmtpReply(NamedTuple):
    """A tuple, not a dataclass: several are made per message on the relay's hot path."""

    code: int
    message: str  # the reply's text, continuation lines joined by "\n"


class TransactionReplies(NamedTuple):
    """What the upstream said to one mail transaction. `data` is None when no content could
    follow it: not sent (one by one: MAIL refused or no recipient accepted), or a pipelined
    DATA's 354 ended with a lone dot because nobody could receive the content. `final` is
    None when no content was sent."""

    mail: SmtpReply
    recipients: tuple[SmtpReply, ...]
    data: SmtpReply | None
    final: SmtpReply | None


def outbound_content(content: bytes) -> bytes:
    """The content as it goes on the wire after DATA, end-of-data sequence included."""
    crlf = content.count(b"\r\n")
    if content.count(b"\r") != crlf or content.count(b"\n") != crlf:
        content = _BARE_LINE_ENDS.sub(b"\r\n", content)
    if not content.endswith(b"\r\n"):
        content += b"\r\n"
    if content.startswith(b"."):
        content = b"." + content
    if b"\r\n." in content:
        content = content.replace(b"\r\n.", b"\r\n..")
    return content + b".\r\n"


def command_line(verb: bytes, *args: bytes) -> bytes:
    """One command with its CRLF; refuses control characters in the arguments."""
    for arg in args:
        if _CONTROLS.search(arg):
            raise ValueError("control character in an SMTP command argument")
    return b" ".join((verb, *args)) + b"\r\n"


class SmtpConnection:
    """A connection that has been greeted and said EHLO (and STARTTLS and AUTH when asked).

    Every read is bounded by `timeout` seconds; a transaction's pipelined replies share one
    deadline, so a slow upstream cannot hold a session for longer than that per phase.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 timeout: float) -> None:
        self._reader, self._writer = reader, writer
        self.timeout = timeout
        self.extensions: dict[str, str] = {}
        self._broken = False

    @classmethod
    async def open(cls, host: str, port: int, *, local_hostname: str,
                   connect_timeout: float, reply_timeout: float,
                   tls_context: ssl.SSLContext | None = None,
                   username: str = "", password: str = "") -> SmtpConnection:
        """Connect, read the greeting, EHLO; with `tls_context` STARTTLS and EHLO again;
        with `username` AUTH (PLAIN, or LOGIN when only that is offered)."""
        try:
            async with asyncio.timeout(connect_timeout):
                reader, writer = await asyncio.open_connection(host, port,
                                                               limit=MAX_REPLY_LINE)
        except TimeoutError as exc:
            raise SmtpClientError(f"connecting to {host}:{port} timed out") from exc
        except OSError as exc:
            raise SmtpClientError(f"connecting to {host}:{port}: {exc}") from exc
        conn = cls(reader, writer, reply_timeout)
        try:
            greeting = await conn._read_reply_within(connect_timeout)
            if greeting.code != 220:
                raise SmtpClientError(f"greeting {greeting.code} {greeting.message}")
            await conn.ehlo(local_hostname)
            if tls_context is not None:
                await conn.starttls(tls_context, host)
                await conn.ehlo(local_hostname)
            if username:
                await conn.login(username, password)
        except BaseException:
            conn.close()
            raise
        return conn

    # -- state -------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return not self._broken and not self._writer.is_closing() \
            and not self._reader.at_eof()

    def supports(self, extension: str) -> bool:
        return extension.lower() in self.extensions

    def close(self) -> None:
        self._broken = True
        if not self._writer.is_closing():
            self._writer.close()

    # -- reading and writing -------------------------------------------------------------

    async def _read_reply(self) -> SmtpReply:
        code = -1
        lines: list[str] = []
        size = 0
        while True:
            try:
                line = await self._reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                self._broken = True
                raise ConnectionClosed("the upstream closed the connection") from exc
            except asyncio.LimitOverrunError as exc:
                self._broken = True
                raise SmtpClientError("reply line too long") from exc
            except (ConnectionError, OSError) as exc:
                self._broken = True
                raise ConnectionClosed(str(exc) or type(exc).__name__) from exc
            size += len(line)
            if size > MAX_REPLY or len(line) < 4 or not line[:3].isdigit() \
                    or line[3:4] not in (b" ", b"-", b"\r", b"\n"):
                self._broken = True
                raise SmtpClientError(f"not an SMTP reply: {line[:80]!r}")
            code = int(line[:3])
            lines.append(line[4:].strip(b" \t\r\n").decode("utf-8", "surrogateescape"))
            if line[3:4] != b"-":
                return SmtpReply(code, "\n".join(lines))

    async def _read_reply_within(self, seconds: float) -> SmtpReply:
        try:
            async with asyncio.timeout(seconds):
                return await self._read_reply()
        except TimeoutError as exc:
            self._broken = True
            raise SmtpClientError("timed out waiting for the upstream's reply") from exc

    async def _send(self, data: bytes) -> None:
        if not self.is_connected:
            raise ConnectionClosed("connection already closed")
        try:
            self._writer.write(data)
            if self._writer.transport.get_write_buffer_size() > 65536:
                async with asyncio.timeout(self.timeout):
                    await self._writer.drain()
        except TimeoutError as exc:
            self._broken = True
            raise SmtpClientError("timed out sending to the upstream") from exc
        except (ConnectionError, OSError) as exc:
            self._broken = True
            raise ConnectionClosed(str(exc) or type(exc).__name__) from exc

    async def command(self, line: bytes) -> SmtpReply:
        await self._send(line)
        return await self._read_reply_within(self.timeout)

    # -- session commands --------------------------------------------------------------

    async def ehlo(self, local_hostname: str) -> None:
        reply = await self.command(command_line(b"EHLO", local_hostname.encode("ascii")))
        if reply.code != 250:
            raise SmtpClientError(f"EHLO refused: {reply.code} {reply.message}")
        self.extensions = {}
        for line in reply.message.split("\n")[1:]:
            keyword, _, params = line.partition(" ")
            self.extensions[keyword.lower()] = params

    async def starttls(self, context: ssl.SSLContext, host: str) -> None:
        if not self.supports("starttls"):
            raise SmtpClientError("the upstream does not offer STARTTLS")
        reply = await self.command(b"STARTTLS\r\n")
        if reply.code != 220:
            raise SmtpClientError(f"STARTTLS refused: {reply.code} {reply.message}")
        try:
            async with asyncio.timeout(self.timeout):
                await self._writer.start_tls(context, server_hostname=host)
        except (TimeoutError, ssl.SSLError, OSError) as exc:
            self._broken = True
            raise SmtpClientError(f"TLS handshake with the upstream failed: {exc}") from exc

    async def login(self, username: str, password: str) -> None:
        methods = self.extensions.get("auth", "").upper().split()
        if "PLAIN" in methods:
            token = base64.b64encode(f"\0{username}\0{password}".encode()).decode("ascii")
            reply = await self.command(command_line(b"AUTH", b"PLAIN", token.encode()))
        elif "LOGIN" in methods:
            reply = await self.command(b"AUTH LOGIN\r\n")
            for secret in (username, password):
                if reply.code != 334:
                    break
                reply = await self.command(base64.b64encode(secret.encode()) + b"\r\n")
        else:
            raise SmtpClientError("the upstream offers neither AUTH PLAIN nor AUTH LOGIN")
        if reply.code != 235:
            raise SmtpClientError(f"upstream refused the login: {reply.code} {reply.message}")

    async def rset(self) -> None:
        """RSET; a connection that does not take it is closed (not reused)."""
        try:
            reply = await self.command(b"RSET\r\n")
        except SmtpClientError:
            self.close()
            return
        if reply.code != 250:
            self.close()

    async def quit(self) -> None:
        try:
            await self.command(b"QUIT\r\n")
        finally:
            self.close()

    # -- one mail transaction ----------------------------------------------------------

    async def transaction(self, mail: bytes, recipients: Sequence[bytes],
                          content: bytes) -> TransactionReplies:
        """MAIL, RCPT for each of `recipients` (command lines, from `command_line`), DATA
        and `content` (sent as `outbound_content`). Pipelined when the upstream offers it.

        Raises `ConnectionClosed` when the connection turned out closed before the MAIL
        reply (a stale pooled connection: nothing was accepted), `SmtpClientError` on any
        other failure (nothing is known to be accepted).
        """
        pipelined = self.supports("pipelining")
        await self._send(b"".join((mail, *recipients, b"DATA\r\n")) if pipelined else mail)
        mail_reply = await self._read_reply_within(self.timeout)  # closed here: stale
        try:
            if pipelined:
                return await self._pipelined(mail_reply, len(recipients), content)
            return await self._one_by_one(mail_reply, recipients, content)
        except ConnectionClosed as exc:  # after the MAIL reply: no longer a stale connection
            raise SmtpClientError(str(exc)) from exc

    async def _one_by_one(self, mail_reply: SmtpReply, recipients: Sequence[bytes],
                          content: bytes) -> TransactionReplies:
        if mail_reply.code != 250:
            return TransactionReplies(mail_reply, (), None, None)
        replies = []
        for rcpt in recipients:
            replies.append(await self.command(rcpt))
        if not any(r.code in (250, 251) for r in replies):
            return TransactionReplies(mail_reply, tuple(replies), None, None)
        data = await self.command(b"DATA\r\n")
        if data.code != 354:
            return TransactionReplies(mail_reply, tuple(replies), data, None)
        final = await self._content(content)
        return TransactionReplies(mail_reply, tuple(replies), data, final)

    async def _pipelined(self, mail_reply: SmtpReply, recipients: int,
                         content: bytes) -> TransactionReplies:
        try:
            async with asyncio.timeout(self.timeout):  # one deadline for the other replies
                replies = tuple([await self._read_reply() for _ in range(recipients)])
                data = await self._read_reply()
        except TimeoutError as exc:
            self._broken = True
            raise SmtpClientError("timed out waiting for the upstream's replies") from exc
        if data.code != 354:
            return TransactionReplies(mail_reply, replies, data, None)
        if mail_reply.code != 250 or not any(r.code in (250, 251) for r in replies):
            # RFC 2920 3.1: DATA was accepted although nobody can receive the content:
            # end it with a lone dot, so no message is created, and report the refusals.
            await self._send(b".\r\n")
            await self._read_reply_within(self.timeout)
            return TransactionReplies(mail_reply, replies, None, None)
        final = await self._content(content)
        return TransactionReplies(mail_reply, replies, data, final)

    async def _content(self, content: bytes) -> SmtpReply:
        # What the socket does not take at once is sent while the reply is awaited; the
        # reply's deadline bounds both.
        await self._send(outbound_content(content))
        return await self._read_reply_within(self.timeout)
