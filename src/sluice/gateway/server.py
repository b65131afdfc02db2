"""Start and stop the gateway's listeners; wire store, relay, hook and handler together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, time
from functools import partial
from pathlib import Path

from sqlalchemy import Connection, text, update
from sqlmodel import Session, col, select

from sluice.classifier.history import SenderHistory, Sent
from sluice.core.db import init_schema, insert_ignoring_conflicts, make_engine
from sluice.core.decision import RoutingDecision
from sluice.core.errors import ConfigError
from sluice.core.mail import Mail
from sluice.core.post import Post
from sluice.core.settings import Settings
from sluice.core.tables import utcnow
from sluice.core.tables_router import DigestItem, SenderNote
from sluice.gateway.auth import Authenticator, load_users
from sluice.gateway.handler import GatewayHandler
from sluice.gateway.pipeline import PipelineHook
from sluice.gateway.protocol import GatewayLMTP, GatewaySMTP
from sluice.gateway.relay import Deliverer, MaildirDelivery, Outgoing, UpstreamRelay
from sluice.gateway.senders import CATCH_UP_SECONDS, RecordedHistory, warmed_history
from sluice.gateway.store import Store
from sluice.gateway.wiring import default_hook, load_ruleset
from sluice.router.blobs import BlobStore
from sluice.router.destinations import make_destination
from sluice.router.digest import DigestEntry, build_digest, next_digest_time
from sluice.router.follow import follow_threads
from sluice.router.notes import build_sender_note
from sluice.router.outbox import FallbackSender, OutboxWorker
from sluice.router.rules import RuleSet
from sluice.router.rulesdb import load_stored_rules, stored_rules_version
from sluice.space.follow import ThreadOrigin, thread_origin

log = logging.getLogger(__name__)

#: How often old ledger entries are pruned.
LEDGER_PRUNE_INTERVAL = 3600.0
#: Between two looks at the sessions while draining.
DRAIN_POLL = 0.05
#: PostgreSQL advisory lock taken by the worker node that sends the daily digests.
DIGEST_LOCK_KEY = 0x51_D1_6E_57


@dataclass(frozen=True, slots=True)
class ListenSpec:
    host: str
    port: int
    lmtp: bool

    def __str__(self) -> str:
        return f"{'lmtp' if self.lmtp else 'smtp'}://{self.host}:{self.port}"


def parse_hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"expected HOST:PORT, got {text!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def parse_listen(text: str) -> ListenSpec:
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "smtp", text
    if scheme not in ("smtp", "lmtp"):
        raise ConfigError(f"listen scheme must be smtp:// or lmtp://, got {scheme!r}")
    host, port = parse_hostport(rest)
    return ListenSpec(host, port, scheme == "lmtp")


def make_deliverer(settings: Settings) -> Deliverer:
    if not settings.upstream:
        return MaildirDelivery(settings.data_dir / "mailboxes")
    host, port = parse_hostport(settings.upstream)
    return UpstreamRelay(
        host, port, local_hostname=settings.hostname, starttls=settings.upstream_starttls,
        tls_verify=settings.upstream_tls_verify, ca_file=settings.upstream_ca_file,
        username=settings.upstream_user, password=settings.upstream_password,
        connect_timeout=settings.upstream_connect_timeout, timeout=settings.upstream_timeout,
        pool_size=settings.upstream_pool_size, idle_seconds=settings.upstream_idle_seconds,
    )


def _tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS certificate {cert} / key {key}: {exc}") from exc
    return context


class Gateway:
    """The running gateway: listeners, the store's writer thread and the relay pool."""

    def __init__(self, settings: Settings, hook: PipelineHook | None = None,
                 fallback: FallbackSender | None = None) -> None:
        """`hook` None: classify and apply the rules file (the production pipeline).
        `fallback` None: mail that the outbox gives up on is delivered by the deliverer
        (`sluice watch` puts it back into the watched mailbox instead)."""
        self.settings = settings
        self.specs = [parse_listen(item) for item in settings.listen]
        self.engine = make_engine(settings)
        init_schema(self.engine)
        with Session(self.engine) as session:
            # Rules edited through the API (stored: users' and the policy) replace the file's.
            self.rules = load_stored_rules(session, load_ruleset(settings))
        #: Without a given hook the rules are the production ones: stored user rules changed
        #: in the web app are picked up within rules_reload_seconds (`_reload_rules`).
        self._reloads = hook is None
        self._rules_version = self._user_rules_version()
        #: What each sender sent before, for the classifier (production pipeline only).
        self.senders: RecordedHistory | None = (
            warmed_history(self.engine, digests=settings.header_only)
            if hook is None and settings.classify else None)
        self._routing: PipelineHook = hook or default_hook(settings, self.rules,
                                                           self._history())
        hook = self._route if self._reloads else self._routing
        self.store = Store(self.engine)
        self.deliverer = make_deliverer(settings)
        self.blobs = BlobStore(self.engine)
        self.destinations = {
            name: make_destination(name, spec.kind, spec.options, self.engine)
            for name, spec in self.rules.destinations.items()
        }
        self.worker = OutboxWorker(self.engine, self.blobs, self.destinations,
                                   fallback or self._fall_back, on_published=self._note_sender)
        self._stopping = asyncio.Event()
        self._worker_task: asyncio.Task[None] | None = None
        self._digest_task: asyncio.Task[None] | None = None
        users = load_users(settings.auth_users_file) if settings.auth_users_file else {}
        self.authenticator = Authenticator(users) if users else None
        self.tls_context = (_tls_context(settings.tls_cert, settings.tls_key)
                            if settings.tls_cert and settings.tls_key else None)
        if self.authenticator and not self.tls_context:
            raise ConfigError("AUTH needs STARTTLS: set tls_cert and tls_key")
        self.handler = GatewayHandler(settings, self.store, self.deliverer, hook,
                                      auth_enabled=self.authenticator is not None,
                                      on_posts=self.worker.wake)
        self.servers: list[asyncio.base_events.Server] = []
        self.sessions: weakref.WeakSet[GatewaySMTP | GatewayLMTP] = weakref.WeakSet()
        self._prune_task: asyncio.Task[None] | None = None
        self._reload_task: asyncio.Task[None] | None = None
        self._senders_task: asyncio.Task[None] | None = None
        #: True from the first moment of `stop`: listeners closed, health says draining.
        self.draining = False

    async def _route(self, mail: Mail, recipients: tuple[str, ...]) -> RoutingDecision:
        decision = await self._routing(mail, recipients)
        references = [*mail.thread.references, mail.thread.in_reply_to]
        if not self.rules.destinations or not any(references):
            return decision
        try:  # a reply follows its thread to where each recipient put the thread's start
            origin = await asyncio.to_thread(self._thread_origin, references, recipients)
        except Exception:
            log.exception("looking up the thread of %s failed; deciding without it",
                          mail.message_id)
            return decision
        return follow_threads(decision, origin.destinations, self.rules,
                              answers_space_comment=origin.answers_space_comment)

    def _thread_origin(self, references: list[str], recipients: tuple[str, ...]) -> ThreadOrigin:
        with self.engine.connect() as conn:
            return thread_origin(conn, references, recipients)

    def _user_rules_version(self) -> tuple[object, ...]:
        """Changes whenever stored rules (users' or the policy) are saved."""
        with Session(self.engine) as session:
            return stored_rules_version(session)

    def _load_rules(self) -> RuleSet:
        with Session(self.engine) as session:
            return load_stored_rules(session, load_ruleset(self.settings))

    async def reload_rules(self) -> bool:
        """Reload the stored user rules if they changed; True when the routing changed."""
        version = await asyncio.to_thread(self._user_rules_version)
        if version == self._rules_version:
            return False
        try:
            rules = await asyncio.to_thread(self._load_rules)
        except ConfigError as exc:
            log.error("stored rules changed but cannot be used, keeping the previous: %s", exc)
            self._rules_version = version
            return False
        self.rules, self._rules_version = rules, version
        self._routing = default_hook(self.settings, rules, self._history())
        log.info("user rules reloaded")
        return True

    async def _reload_rules(self) -> None:
        while True:
            await asyncio.sleep(self.settings.rules_reload_seconds)
            try:
                await self.reload_rules()
            except Exception:
                log.exception("checking the stored rules failed")

    def _history(self) -> SenderHistory | None:
        return self.senders.history if self.senders is not None else None

    async def _catch_up_senders(self) -> None:
        """Count the messages recorded since (other nodes' among them) into the history."""
        assert self.senders is not None
        senders = self.senders
        while True:
            await asyncio.sleep(CATCH_UP_SECONDS)
            try:
                sents, last = await asyncio.to_thread(self._read_senders, senders)
                senders.count(sents, last)
            except Exception:
                log.exception("counting recorded messages into the sender history failed")

    def _read_senders(self, senders: RecordedHistory) -> tuple[list[Sent], int]:
        with self.engine.connect() as conn:
            return senders.read(conn)

    def _protocol(self, spec: ListenSpec) -> GatewaySMTP | GatewayLMTP:
        cls = GatewayLMTP if spec.lmtp else GatewaySMTP
        protocol = cls(
            self.handler,
            data_size_limit=self.settings.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=self.settings.hostname,
            ident="Sluice",
            tls_context=self.tls_context,
            require_starttls=self.settings.require_starttls,
            timeout=self.settings.command_timeout,
            auth_required=False,
            auth_require_tls=True,
            authenticator=self.authenticator,
            loop=asyncio.get_running_loop(),
        )
        self.sessions.add(protocol)
        return protocol

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for spec in self.specs:
            server = await loop.create_server(partial(self._protocol, spec), spec.host,
                                              spec.port, reuse_address=True)
            self.servers.append(server)
            log.info("listening on %s", spec)
        self._prune_task = asyncio.create_task(self._prune_ledger())
        if self._reloads and self.settings.rules_reload_seconds > 0:
            self._reload_task = asyncio.create_task(self._reload_rules())
        if self.senders is not None:
            self._senders_task = asyncio.create_task(self._catch_up_senders())
        if self.settings.worker:
            self._worker_task = asyncio.create_task(self.worker.run(self._stopping))
            self._digest_task = asyncio.create_task(self._digest_loop())

    async def _digest_loop(self) -> None:
        hour, minute = (int(part) for part in self.settings.digest_time.split(":"))
        while not self._stopping.is_set():
            now = datetime.now(UTC)
            wait = (next_digest_time(now, time(hour, minute)) - now).total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=wait)
                return
            try:
                await self.send_digests()
            except Exception:
                log.exception("sending digests failed; next try tomorrow")

    async def _note_sender(self, post: Post) -> None:
        """Tell the sender of a diverted broadcast, once per destination, where it went."""
        spec = self.rules.destinations.get(post.destination)
        if (spec is None or not spec.options.get("notify_sender")
                or post.category != "broadcast" or not post.sender
                or not self.rules.is_internal(post.sender)):
            return
        if not await asyncio.to_thread(self._claim_note, post.sender, post.destination):
            return
        note = build_sender_note(post, hostname=self.settings.hostname, now=datetime.now(UTC))
        await self.deliverer.deliver(Outgoing("", (post.sender,), note))

    def _claim_note(self, sender: str, destination: str) -> bool:
        """Record that the note is being sent; False if it was sent before."""
        with Session(self.engine) as session:
            added = insert_ignoring_conflicts(
                session.connection(), SenderNote.__table__,  # type: ignore[attr-defined]
                [{"sender": sender, "destination": destination, "sent_at": utcnow()}],
                ["sender", "destination"])
            session.commit()
            return added > 0

    async def send_digests(self) -> int:
        """Send every user their pending digest; returns how many digests were sent.

        Every worker node fires at `digest_time`. On PostgreSQL the node that gets the
        advisory lock sends them all and the others skip; a node firing later finds
        nothing pending. (SQLite is one node.)"""
        lock = await asyncio.to_thread(self._lock_digests)
        if lock is False:
            log.info("another node is sending the digests")
            return 0
        try:
            return await self._send_digests()
        finally:
            if not isinstance(lock, bool):
                await asyncio.to_thread(self._unlock_digests, lock)

    def _lock_digests(self) -> Connection | bool:
        """PostgreSQL: the connection holding the lock, or False when another node holds
        it. Elsewhere: True (no lock needed)."""
        if self.engine.dialect.name != "postgresql":
            return True
        conn = self.engine.connect()
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:key)"),
                               {"key": DIGEST_LOCK_KEY}).scalar()
            conn.commit()  # a session-level lock outlives the transaction
        except Exception:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        return conn

    @staticmethod
    def _unlock_digests(conn: Connection) -> None:
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": DIGEST_LOCK_KEY})
            conn.commit()
        finally:
            conn.close()

    async def _send_digests(self) -> int:
        pending = await asyncio.to_thread(self._pending_digests)
        sent = 0
        for user, items in pending.items():
            entries = [DigestEntry(i.subject, i.sender, i.destination, i.url,
                                   i.created_at) for i in items]
            content = build_digest(user, entries, hostname=self.settings.hostname,
                                   now=datetime.now(UTC))
            replies = await self.deliverer.deliver(Outgoing("", (user,), content))
            if replies[user].temporary:
                log.warning("digest for %s deferred: %s", user, replies[user])
                continue
            await asyncio.to_thread(self._mark_digested, [i.id for i in items if i.id])
            sent += 1
        return sent

    def _pending_digests(self) -> dict[str, list[DigestItem]]:
        with Session(self.engine) as session:
            items = session.exec(select(DigestItem).where(col(DigestItem.sent_at).is_(None))
                                 .order_by(col(DigestItem.id))).all()
        grouped: dict[str, list[DigestItem]] = {}
        for item in items:
            grouped.setdefault(item.user, []).append(item)
        return grouped

    def _mark_digested(self, ids: list[int]) -> None:
        with Session(self.engine) as session:
            session.execute(update(DigestItem).where(col(DigestItem.id).in_(ids))
                            .values(sent_at=utcnow()))
            session.commit()

    async def _fall_back(self, mail_from: str, recipients: tuple[str, ...],
                         content: bytes) -> set[str]:
        """The outbox gave up on a destination: deliver the original as mail."""
        replies = await self.deliverer.deliver(Outgoing(mail_from, recipients, content))
        for rcpt, reply in replies.items():
            if reply.permanent:
                log.error("fall-back delivery to %s refused for good: %s", rcpt, reply)
        return {rcpt for rcpt, reply in replies.items() if reply.temporary}

    @property
    def worker_running(self) -> bool:
        return self._worker_task is not None and not self._worker_task.done()

    @property
    def bound_ports(self) -> list[int]:
        return [s.sockets[0].getsockname()[1] for s in self.servers if s.sockets]

    async def _prune_ledger(self) -> None:
        """Every hour: the ledger, and the older history when `retention_days` is set (in a
        thread: it runs in short batches beside the store's writer)."""
        from datetime import timedelta

        from sluice.core.retention import prune

        ledger = timedelta(days=self.settings.ledger_retention_days)
        while True:
            try:
                await self.store.prune_ledger(ledger)
            except Exception:
                log.exception("ledger pruning failed")
            if self.settings.retention_days:
                try:
                    counts = await asyncio.to_thread(
                        prune, self.engine, timedelta(days=self.settings.retention_days))
                    if counts.message or counts.blob or counts.outbox_job:
                        log.info("retention: deleted %s", ", ".join(counts.lines()))
                except Exception:
                    log.exception("retention pruning failed")
            await asyncio.sleep(LEDGER_PRUNE_INTERVAL)

    async def stop(self, grace: float | None = None,
                   force: asyncio.Event | None = None) -> bool:
        """Graceful shutdown; True when everything in flight finished.

        The listeners close at once (new connections are refused) and idle sessions are
        answered 421; transactions under way (MAIL given, or in DATA) get `grace` seconds
        (default `shutdown_grace`) to end, then what is left is answered 421 too. The worker
        finishes the job in hand and releases its other claims. `force` set (a second
        signal) ends the wait at once; the worker is then cancelled and its claims lapse
        with their lease. Nothing acknowledged is lost either way: 250 came after a commit.
        """
        self.draining = True
        for server in self.servers:
            server.close()
        self._stopping.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.settings.shutdown_grace if grace is None else grace)
        finished = await self._drain_sessions(deadline, force)
        await asyncio.gather(*(s.close_session() for s in list(self.sessions)))
        for server in self.servers:
            await server.wait_closed()
        if self._prune_task:
            self._prune_task.cancel()
        if self._reload_task:
            self._reload_task.cancel()
        if self._senders_task:
            self._senders_task.cancel()
        for task in (self._worker_task, self._digest_task):
            if task is not None:
                finished = await self._finish_task(task, deadline, force) and finished
        await self.deliverer.close()
        # A closed transport releases its socket on a later turn of the loop (after STARTTLS
        # the raw transport under the TLS one only once that one is lost): wait until every
        # session saw its connection lost, abort what is still open after a second, then
        # give the loop the turns that release the sockets — or they outlive the loop.
        deadline = loop.time() + 1.0
        while any(s.transport is not None for s in self.sessions) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        for session in list(self.sessions):
            if isinstance(session.transport, asyncio.WriteTransport):
                session.transport.abort()
        for _ in range(3):
            await asyncio.sleep(0)
        await asyncio.sleep(0.02)
        self.store.close()
        self.engine.dispose()
        return finished

    async def _drain_sessions(self, deadline: float, force: asyncio.Event | None) -> bool:
        """Say 421 to every session not in a transaction (again after each one ends) until
        none is left or the time is up; then to the rest. True when none was cut off."""
        loop = asyncio.get_running_loop()
        while True:
            open_sessions = [s for s in self.sessions if s.transport is not None]
            for session in open_sessions:
                session.draining = True
                if not session.in_transaction:
                    session.goodbye()
            busy = [s for s in open_sessions if s.in_transaction]
            if not busy or loop.time() >= deadline or (force is not None and force.is_set()):
                break
            await asyncio.sleep(DRAIN_POLL)
        for session in busy:
            log.warning("shutdown: session %r still in a transaction; answered 421",
                        session.session and session.session.peer)
            session.goodbye()
        return not busy

    @staticmethod
    async def _finish_task(task: asyncio.Task[None], deadline: float,
                           force: asyncio.Event | None) -> bool:
        """Wait for a background task until the deadline or `force`; then cancel it."""
        loop = asyncio.get_running_loop()
        while not task.done() and loop.time() < deadline and not (force and force.is_set()):
            await asyncio.wait({task}, timeout=min(DRAIN_POLL * 4, max(deadline - loop.time(), 0)))
        if task.done():
            return True
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        return False
