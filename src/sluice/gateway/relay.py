"""relay: hand the message to the next hop and report each recipient's reply.

Two next hops: an upstream SMTP server (smarthost or Postfix's re-injection port), or,
with no upstream configured, a local maildir per recipient under the data dir.
Outbound line endings are normalised and dots stuffed (`smtp_client.outbound_content`), so
no end-of-data sequence in the content can reach the upstream as a second message; the
envelope is pipelined when the upstream offers PIPELINING.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aiosmtplib.email import quote_address

from sluice.gateway.reply import UPSTREAM_UNAVAILABLE, Reply
from sluice.gateway.smtp_client import (
    ConnectionClosed,
    SmtpClientError,
    SmtpConnection,
    command_line,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One relay job: the envelope to use upstream and the bytes to send."""

    mail_from: str  # "" for the null sender
    recipients: tuple[str, ...]
    content: bytes
    smtp_utf8: bool = False
    eight_bit: bool = False


class Deliverer(Protocol):
    async def deliver(self, job: Outgoing) -> dict[str, Reply]:
        """Deliver to every recipient; never raises, every recipient gets a reply."""
        ...

    async def close(self) -> None: ...


def _all(recipients: Sequence[str], reply: Reply) -> dict[str, Reply]:
    return dict.fromkeys(recipients, reply)


def _reply(code: int, message: str) -> Reply:
    """The upstream's reply as the client will see it: any 4xx becomes 451 (the client
    retries later whatever the upstream's reason), 2xx and 5xx pass unchanged."""
    return Reply(451 if 400 <= code < 500 else code, message)


#: An address that is its own SMTP path once bracketed: no spaces, brackets, quotes,
#: comments, routes or controls.
_ATOMS = r"[^\s<>()\[\]\\,;:\"@\x00-\x1f\x7f]+"
_PLAIN_ADDRESS = re.compile(f"{_ATOMS}@{_ATOMS}")


def smtp_path(address: str) -> str:
    """`<address>` for MAIL FROM / RCPT TO, as aiosmtplib's `quote_address` gives it.

    aiosmtplib runs `email.utils.parseaddr` on every address (a tenth of the gateway's CPU
    per message); a plain address is already its own result. Anything else, and the
    injection checks, go through aiosmtplib.
    """
    if _PLAIN_ADDRESS.fullmatch(address):
        return f"<{address}>"
    return quote_address(address)


class UpstreamRelay:
    """SMTP client towards the upstream with a small pool of kept-open connections."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        local_hostname: str,
        starttls: bool = False,
        tls_verify: bool = True,
        ca_file: Path | None = None,
        username: str = "",
        password: str = "",
        connect_timeout: float = 30.0,
        timeout: float = 300.0,
        pool_size: int = 20,
        idle_seconds: float = 30.0,
    ) -> None:
        self.host, self.port = host, port
        self.local_hostname = local_hostname
        self.starttls = starttls
        self.tls_context: ssl.SSLContext | None = None
        if starttls:
            ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
            if not tls_verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self.tls_context = ctx
        self.username, self.password = username, password
        self.connect_timeout, self.timeout = connect_timeout, timeout
        self.pool_size, self.idle_seconds = pool_size, idle_seconds
        self._idle: list[tuple[float, SmtpConnection]] = []

    async def _connect(self) -> SmtpConnection:
        # EHLO at once: the extensions decide the MAIL options (SMTPUTF8, 8BITMIME, SIZE)
        # and whether the envelope is pipelined.
        return await SmtpConnection.open(
            self.host, self.port, local_hostname=self.local_hostname,
            connect_timeout=self.connect_timeout, reply_timeout=self.timeout,
            tls_context=self.tls_context if self.starttls else None,
            username=self.username, password=self.password)

    async def _checkout(self) -> tuple[SmtpConnection, bool]:
        """A connection and whether it came from the pool (and so may be stale)."""
        now = time.monotonic()
        while self._idle:
            since, client = self._idle.pop()
            if client.is_connected and now - since < self.idle_seconds:
                return client, True
            client.close()
        return await self._connect(), False

    def _checkin(self, client: SmtpConnection) -> None:
        if client.is_connected and len(self._idle) < self.pool_size:
            self._idle.append((time.monotonic(), client))
        else:
            client.close()

    async def deliver(self, job: Outgoing) -> dict[str, Reply]:
        for attempt in (1, 2):
            try:
                client, pooled = await self._checkout()
            except (TimeoutError, OSError, SmtpClientError) as exc:
                log.warning("upstream %s:%s unreachable: %s", self.host, self.port, exc)
                return _all(job.recipients, UPSTREAM_UNAVAILABLE)
            try:
                replies, reusable = await self._transaction(client, job)
            except _StaleConnection:
                client.close()
                if pooled and attempt == 1:
                    continue  # nothing was sent yet: a fresh connection is safe
                return _all(job.recipients, UPSTREAM_UNAVAILABLE)
            except BaseException:  # cancelled mid-transaction: its state is unknown
                client.close()
                raise
            if reusable:
                self._checkin(client)
            else:
                client.close()
            return replies
        return _all(job.recipients, UPSTREAM_UNAVAILABLE)  # pragma: no cover

    async def _transaction(
        self, client: SmtpConnection, job: Outgoing
    ) -> tuple[dict[str, Reply], bool]:
        options = []
        encoding = "utf-8" if job.smtp_utf8 else "ascii"
        if job.eight_bit and client.supports("8bitmime"):
            options.append(b"BODY=8BITMIME")
        if job.smtp_utf8:
            if not client.supports("smtputf8"):
                return _all(job.recipients, Reply(553, "5.6.7 Upstream does not support "
                                                       "SMTPUTF8")), True
            options.append(b"SMTPUTF8")
        if client.supports("size"):
            options.append(b"SIZE=%d" % len(job.content))
        try:
            mail = command_line(b"MAIL", b"FROM:" + smtp_path(job.mail_from).encode(encoding),
                                *options)
            rcpts = [command_line(b"RCPT", b"TO:" + smtp_path(rcpt).encode(encoding))
                     for rcpt in job.recipients]
        except UnicodeEncodeError:
            return _all(job.recipients, Reply(553, "5.6.7 Address needs SMTPUTF8")), True
        except ValueError:
            return _all(job.recipients, Reply(501, "5.1.3 Address cannot be relayed")), True
        try:
            said = await client.transaction(mail, rcpts, job.content)
        except ConnectionClosed as exc:
            raise _StaleConnection from exc
        except SmtpClientError as exc:
            # Connection lost or timed out mid-transaction: nothing is known to be accepted.
            log.warning("upstream transaction failed: %s", exc)
            return _all(job.recipients, UPSTREAM_UNAVAILABLE), False
        if said.mail.code != 250:
            await client.rset()
            return _all(job.recipients, _reply(said.mail.code, said.mail.message)), \
                client.is_connected
        replies: dict[str, Reply] = {}
        accepted: list[str] = []
        for rcpt, answer in zip(job.recipients, said.recipients, strict=True):
            if answer.code in (250, 251):
                accepted.append(rcpt)
            replies[rcpt] = _reply(answer.code, answer.message)
        outcome = said.final or said.data
        if not accepted or outcome is None:
            await client.rset()
            return replies, client.is_connected
        replies.update(_all(accepted, _reply(outcome.code, outcome.message)))
        if said.final is None or said.final.code != 250:
            await client.rset()
            return replies, client.is_connected
        return replies, True

    async def close(self) -> None:
        while self._idle:
            _, client = self._idle.pop()
            try:
                await asyncio.wait_for(client.quit(), timeout=2)
            except Exception:
                client.close()


class _StaleConnection(Exception):
    """A pooled connection was closed by the upstream before anything was sent."""


_UNSAFE = re.compile(r"[^a-z0-9._+@=-]")


def mailbox_name(address: str) -> str:
    """A recipient address as a safe directory name (no path separators, no leading dot)."""
    name = _UNSAFE.sub("_", address.lower()).lstrip(".")
    return name or "_"


class MaildirDelivery:
    """Delivers to data_dir/mailboxes/<recipient>/new, durably (fsync, then rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._sequence = itertools.count(1)  # next() is atomic under the GIL

    async def deliver(self, job: Outgoing) -> dict[str, Reply]:
        return await asyncio.to_thread(self._deliver_sync, job)

    def _deliver_sync(self, job: Outgoing) -> dict[str, Reply]:
        replies: dict[str, Reply] = {}
        for rcpt in job.recipients:
            try:
                name = self._write(mailbox_name(rcpt), job.content)
                replies[rcpt] = Reply(250, f"2.0.0 delivered to maildir as {name}")
            except OSError as exc:
                log.error("maildir delivery to %s failed: %s", rcpt, exc)
                replies[rcpt] = Reply(451, "4.3.0 Mailbox unavailable, try again later")
        return replies

    def _write(self, mailbox: str, content: bytes) -> str:
        box = self.root / mailbox
        for sub in ("tmp", "new", "cur"):
            (box / sub).mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns()}.P{os.getpid()}Q{next(self._sequence)}.{socket.gethostname()}"
        tmp = box / "tmp" / name
        with open(tmp, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, box / "new" / name)
        dir_fd = os.open(box / "new", os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return name

    async def close(self) -> None:
        return None
