"""The gateway handler: admission, envelope checks, and one message through the pipeline.

receive → parse → decide (hook) → relay → record → reply. The reply to the client is sent
only after the upstream accepted the relayed copy and the facts are committed, so a 250
always means the message is safe. Retries are idempotent through the delivery ledger.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from sluice.classifier.features import looks_automated, readers
from sluice.core.decision import DIGEST, ENFORCE, RoutingDecision
from sluice.core.errors import StorageUnavailable
from sluice.core.mail import Envelope as MailEnvelope
from sluice.core.mail import Mail
from sluice.core.parse import parse
from sluice.core.post import Post
from sluice.core.settings import Settings
from sluice.core.tables import utcnow
from sluice.gateway.dsn import build_dsn
from sluice.gateway.headers import protocol_name, received_header
from sluice.gateway.metrics import METRICS
from sluice.gateway.pipeline import FAIL_OPEN_RULE, PipelineHook, decide, deliver_everything
from sluice.gateway.relay import Deliverer, Outgoing
from sluice.gateway.reply import (
    ACCEPTED,
    DUPLICATE,
    LOCAL_ERROR,
    STORAGE_UNAVAILABLE,
    Reply,
)
from sluice.gateway.store import MessageFacts, OutcomeRow, Store
from sluice.router.blobs import blob_row
from sluice.router.outbox import OutboxEntry
from sluice.router.post import build_post

log = logging.getLogger(__name__)

NULL_SENDER = "<>"


def fingerprint(mail_from: str, content: bytes) -> str:
    """Identity of a message for the ledger: the same bytes from the same sender."""
    digest = hashlib.sha256(mail_from.encode("utf-8", "surrogateescape"))
    digest.update(b"\0")
    digest.update(content)
    return digest.hexdigest()


def client_address(peer: Any) -> str:
    """The address a session is counted under: the IP without the port, an IPv4-mapped
    IPv6 address as IPv4 (one client, one count, whichever socket family it came in on)."""
    host = peer[0] if isinstance(peer, tuple) and peer else peer
    try:
        address = ipaddress.ip_address(host)
    except (ValueError, TypeError):
        return str(host)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(address)


class GatewayHandler:
    """aiosmtpd handler object: one `handle_<VERB>` per SMTP verb, plus the message path."""

    def __init__(self, settings: Settings, store: Store, deliverer: Deliverer,
                 hook: PipelineHook = deliver_everything, *, auth_enabled: bool = False,
                 on_posts: Callable[[str, Mail | None, tuple[Post, ...]], None] | None = None,
                 ) -> None:
        self.settings = settings
        #: Called after posts were committed (wakes the outbox worker), with the raw
        #: message's sha256, the parsed message and the posts (a worker in this process
        #: reuses them).
        self.on_posts = on_posts
        self.store = store
        self.deliverer = deliverer
        self.hook = hook
        self.auth_enabled = auth_enabled
        self.active_sessions = 0
        #: Sessions per client address (see `client_address`), for max_sessions_per_client.
        self.client_sessions: dict[str, int] = {}
        self._networks = settings.networks

    # -- admission (before the greeting) ---------------------------------------------

    def in_allowed_network(self, peer: Any) -> bool:
        try:
            address = ipaddress.ip_address(peer[0] if isinstance(peer, tuple) else peer)
        except (ValueError, TypeError, IndexError):
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in net for net in self._networks)

    def admit(self, peer: Any) -> str | None:
        """None to admit the client, or the reply that refuses it. An admitted client is
        counted until `release(peer)`."""
        if self.active_sessions >= self.settings.max_sessions:
            return "421 4.7.0 Too many connections, try again later"
        if not self.auth_enabled and not self.in_allowed_network(peer):
            return "554 5.7.1 Access denied: relaying not permitted from your address"
        client = client_address(peer)
        per_client = self.settings.max_sessions_per_client
        if per_client and self.client_sessions.get(client, 0) >= per_client:
            return "421 4.7.0 Too many connections from your address, try again later"
        self.active_sessions += 1
        self.client_sessions[client] = self.client_sessions.get(client, 0) + 1
        return None

    def release(self, peer: Any) -> None:
        self.active_sessions -= 1
        client = client_address(peer)
        left = self.client_sessions.get(client, 0) - 1
        if left > 0:
            self.client_sessions[client] = left
        else:
            self.client_sessions.pop(client, None)

    # -- envelope ------------------------------------------------------------------------

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        if not self.in_allowed_network(session.peer) and not session.authenticated:
            return "530 5.7.0 Authentication required"
        if not address.isascii() and "SMTPUTF8" not in (o.upper() for o in mail_options):
            return "553 5.6.7 Non-ASCII address needs the SMTPUTF8 parameter"
        envelope.mail_from = address  # "<>" stays "<>" here: aiosmtpd treats "" as no MAIL
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address == NULL_SENDER or "@" not in address:
            return "553 5.1.3 Recipient address must be user@domain"
        if not address.isascii() and not envelope.smtp_utf8:
            return "553 5.6.7 Non-ASCII address needs the SMTPUTF8 parameter on MAIL"
        if len(envelope.rcpt_tos) >= self.settings.max_recipients:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_exception(self, error: Exception) -> str:
        log.exception("SMTP session error", exc_info=error)
        return "451 4.3.0 Local error, try again later"

    # -- the message ---------------------------------------------------------------------

    async def handle_message(self, server: SMTP, session: Session, envelope: Envelope,
                             content: bytes) -> list[str]:
        """Returns one reply per envelope recipient (LMTP); SMTP uses the first only."""
        rcpts = tuple(envelope.rcpt_tos)
        mail_from = "" if envelope.mail_from == NULL_SENDER else str(envelope.mail_from)
        print_ = fingerprint(mail_from, content)
        mail_envelope = MailEnvelope(mail_from, rcpts, tuple(envelope.mail_options),
                                     bool(envelope.smtp_utf8))
        mail = parse_safely(content, mail_envelope)
        decision = await decide(self.hook, mail, rcpts)
        try:
            already = await self.store.delivered(print_)
        except StorageUnavailable:
            return refuse_for_storage(len(rcpts))

        try:
            outbox = outbox_entries(self.settings, mail, decision, print_, mail_from, rcpts,
                                    already)
        except Exception:
            log.exception("could not prepare posts for %s; relaying unchanged", print_[:16])
            decision = RoutingDecision.deliver_all(rcpts, decision.verdict, rule=FAIL_OPEN_RULE)
            outbox = []
        keep = [r for r in rcpts if decision.for_recipient(r).keeps_mail and r not in already]
        keep = list(dict.fromkeys(keep))  # a recipient named twice gets one copy
        replies: dict[str, Reply] = {r: DUPLICATE for r in rcpts if r in already}
        for r in rcpts:
            action = decision.for_recipient(r)
            if r not in already and not action.keeps_mail:
                replies[r] = Reply(250, f"2.0.0 OK, posted to {action.destination}")
        is_lmtp = bool(getattr(server, "lmtp", False))
        source = "lmtp" if is_lmtp else "smtp"
        # Posts that ride with mail for others are committed before the relay: once the
        # upstream has the mail, a failed commit could only be answered 451, and the
        # client's retry would deliver the kept copies a second time.
        posts_first = bool(outbox and keep)
        if posts_first:
            early = message_facts(self.settings, print_, mail, mail_envelope, decision,
                                  {**replies, **dict.fromkeys(keep, LOCAL_ERROR)}, already,
                                  source, outbox)
            try:
                await self.store.record(split_facts(early, set(keep))[0])
            except StorageUnavailable:
                return refuse_for_storage(len(rcpts))
        if keep:
            trace = received_header(
                helo=session.host_name or "", peer_ip=str(session.peer[0]) if session.peer else "",
                hostname=self.settings.hostname,
                protocol=protocol_name(lmtp=getattr(server, "lmtp", False),
                                       tls=session.ssl is not None,
                                       authenticated=bool(session.authenticated),
                                       extended=bool(session.extended_smtp)),
                queue_id=print_[:16], recipients=tuple(keep),
            )
            # Copies that stay mail say where the same message also lives.
            posted = b"".join(
                f"X-Sluice-Posted-To: {e.post.destination} <{e.post.url}>\r\n".encode()
                for e in outbox)
            with METRICS.relay_timer():
                relayed = await self.deliverer.deliver(Outgoing(
                    mail_from=mail_from, recipients=tuple(keep),
                    content=trace + posted + content, smtp_utf8=bool(envelope.smtp_utf8),
                    eight_bit=any(o.upper() == "BODY=8BITMIME" for o in envelope.mail_options),
                ))
            replies.update(relayed)

        dsn_reply = None
        if not is_lmtp:
            dsn_reply = await self._notify_partial_failure(mail_from, content, rcpts, replies)
        # With posts first, the outbox rows were recorded already (split_facts drops them
        # from the second record): building them again cost a JSON encoding per post.
        facts = message_facts(self.settings, print_, mail, mail_envelope, decision, replies,
                              already, source, [] if posts_first else outbox)
        try:
            await self.store.record(split_facts(facts, set(keep))[1] if posts_first else facts)
        except StorageUnavailable:
            METRICS.observe_storage_error()
            if outbox and not posts_first:
                # The posts are not safe: the diverted recipients must not be told 250.
                log.error("could not record message %s with its posts", print_[:16])
                for entry in outbox:
                    for r in entry.recipients:
                        replies[r] = STORAGE_UNAVAILABLE
                dsn_reply = None
            else:
                # The upstream has the message: answering 4xx now would make the client send
                # it again. The facts are lost, the mail is not.
                log.error("could not record message %s after relaying it", print_[:16])
        METRICS.observe_message(facts)
        if outbox and self.on_posts is not None:
            self.on_posts(outbox[0].raw_sha256, mail, tuple(e.post for e in outbox))
        if self.settings.fault_pause_before_reply:
            await asyncio.sleep(self.settings.fault_pause_before_reply)
        if is_lmtp:
            result = [str(replies[r]) for r in rcpts]
        else:
            result = [str(dsn_reply or _combine(replies))] * len(rcpts)
        METRICS.observe_replies(result)
        return result

    async def _notify_partial_failure(self, mail_from: str, content: bytes,
                                      rcpts: tuple[str, ...],
                                      replies: dict[str, Reply]) -> Reply | None:
        """SMTP only: some accepted, some refused for good, none deferred → DSN, then 250."""
        failed = {r: replies[r] for r in rcpts if replies[r].permanent}
        outcomes = [replies[r] for r in rcpts]
        if not failed or any(r.temporary for r in outcomes) or not any(r.ok for r in outcomes):
            return None  # nothing refused, a retry is coming, or the 5xx goes to the client
        if not mail_from:
            return ACCEPTED  # never bounce a bounce
        dsn = build_dsn(hostname=self.settings.hostname, sender=mail_from, original=content,
                        failed=failed)
        sent = await self.deliverer.deliver(Outgoing("", (mail_from,), dsn))
        reply = sent.get(mail_from, LOCAL_ERROR)
        if reply.ok or reply.permanent:
            return ACCEPTED  # a DSN the sender's side refuses is dropped, as MTAs do
        return Reply(451, "4.3.0 Could not report refused recipients, try again later")


def refuse_for_storage(count: int) -> list[str]:
    """Nothing could be recorded and nothing was relayed: the client tries again later."""
    METRICS.observe_storage_error()
    refused = [str(STORAGE_UNAVAILABLE)] * count
    METRICS.observe_replies(refused)
    return refused


def outbox_entries(settings: Settings, mail: Mail | None, decision: RoutingDecision,
                   print_: str, mail_from: str, rcpts: tuple[str, ...],
                   already: dict[str, str]) -> list[OutboxEntry]:
    """One outbox entry per destination; the raw message is stored (once) first."""
    by_destination: dict[str, list[str]] = {}
    for r in dict.fromkeys(rcpts):
        action = decision.for_recipient(r)
        if action.posts and r not in already:
            by_destination.setdefault(action.destination, []).append(r)
    if not by_destination:
        return []
    if mail is None:
        raise RuntimeError("diversion needs a parsed message")
    blob = blob_row(mail.raw)
    raw_sha = blob["sha256"]
    deadline = utcnow() + timedelta(seconds=settings.outbox_deadline)
    entries = []
    for destination, recipients in by_destination.items():
        post = build_post(mail, decision.verdict, destination=destination,
                          fingerprint=print_, recipients=rcpts,
                          base_url=settings.effective_base_url)
        fallback = tuple(r for r in recipients if not decision.for_recipient(r).keeps_mail)
        entries.append(OutboxEntry(post, raw_sha, fallback, mail_from, deadline, blob))
    return entries

def message_facts(settings: Settings, print_: str, mail: Mail | None, envelope: MailEnvelope,
                  decision: RoutingDecision, replies: dict[str, Reply],
                  already: dict[str, str], source: str,
                  outbox: list[OutboxEntry]) -> MessageFacts:
    """Facts, outcomes, ledger rows, outbox jobs and digest items of one message, as
    recorded in one commit; `source` names where it came from (smtp, lmtp, imap)."""
    outcomes = []
    for r in dict.fromkeys(envelope.rcpt_tos):
        action = decision.for_recipient(r)
        reply = replies[r]
        if r in already:
            status = "duplicate"
        elif not action.keeps_mail:
            status = "diverted"
        else:
            status = ("delivered" if reply.ok else "deferred" if reply.temporary
                      else "rejected")
        outcomes.append(OutcomeRow(r, action.action, status, str(reply), action.rule,
                                   action.destination, action.mode))
    delivered = tuple((o.recipient, o.reply) for o in outcomes
                      if o.status in ("delivered", "diverted"))
    verdict = decision.verdict
    message: dict[str, Any] = {
        "fingerprint": print_,
        "source": source,
        "mail_from": envelope.mail_from,
        "rcpt_count": len(envelope.rcpt_tos),
        "size": len(mail.raw) if mail else 0,
        "category": verdict.category if verdict else None,
        "confidence": verdict.confidence if verdict else None,
        "reasons": "\n".join(verdict.reasons) if verdict else None,
        "model_version": verdict.model_version if verdict else None,
    }
    if mail is not None:
        message.update(
            message_id=mail.message_id[:998],
            header_from=mail.from_addr[:512],
            subject=None if settings.header_only else mail.subject,
            to_count=len(mail.to),
            cc_count=len(mail.cc),
            attachment_count=len(mail.attachments),
            attachment_bytes=sum(a.size for a in mail.attachments),
            in_reply_to=mail.thread.in_reply_to[:998],
            references=" ".join(mail.thread.references),
            thread_subject=_thread_key(mail.thread.normalized_subject,
                                       hashed=settings.header_only),
            reply_depth=mail.thread.reply_depth,
            readers=readers(mail),
            automated=looks_automated(mail),
            defects=",".join(mail.defects),
        )
    digest = tuple(
        {"user": o.recipient, "fingerprint": print_, "destination": o.destination,
         "subject": (mail.subject if mail else "") or "(no subject)",
         "sender": (mail.from_addr if mail else "") or envelope.mail_from,
         "url": f"{settings.effective_base_url.rstrip('/')}/m/{print_}",
         "created_at": utcnow()}
        for o in outcomes if o.action == DIGEST and o.mode == ENFORCE
        and o.status == "diverted")
    return MessageFacts(message=message, outcomes=tuple(outcomes), delivered=delivered,
                        outbox=tuple(entry.row() for entry in outbox), digest=digest,
                        blobs=tuple({e.blob["sha256"]: e.blob for e in outbox}.values()))


def split_facts(facts: MessageFacts, kept: set[str]) -> tuple[MessageFacts, MessageFacts]:
    """The message with everything but the kept recipients' outcomes and ledger rows (the
    posts), and the message with only those: recorded before and after the relay."""
    first = replace(facts, outcomes=tuple(o for o in facts.outcomes if o.recipient not in kept),
                    delivered=tuple(d for d in facts.delivered if d[0] not in kept))
    second = replace(facts, outcomes=tuple(o for o in facts.outcomes if o.recipient in kept),
                     delivered=tuple(d for d in facts.delivered if d[0] in kept),
                     outbox=(), digest=(), blobs=(), message_recorded=True)
    return first, second


def parse_safely(content: bytes, envelope: MailEnvelope) -> Mail | None:
    try:
        return parse(content, envelope)
    except Exception:
        log.exception("could not parse message; relaying it unchanged")
        return None


def _combine(replies: dict[str, Reply]) -> Reply:
    """One SMTP reply for the whole transaction."""
    values = list(replies.values())
    if all(r.ok for r in values):
        return ACCEPTED
    for r in values:
        if r.temporary:
            return r
    for r in values:
        if r.permanent and not any(v.ok for v in values):
            return r
    return ACCEPTED


def _thread_key(normalized_subject: str, *, hashed: bool) -> str:
    """The subject threads are grouped by; in header-only mode a digest of it, so threads
    still group and no subject text is stored."""
    if not hashed or not normalized_subject:
        return normalized_subject
    return "sha256:" + hashlib.sha256(normalized_subject.encode("utf-8", "replace")).hexdigest()
