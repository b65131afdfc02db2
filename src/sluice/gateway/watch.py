"""`sluice watch SOURCE`: the gateway's pipeline for a mailbox Sluice cannot sit in front of.

The watcher follows one folder of one IMAP mailbox (its owner's) with IDLE and runs each new
message through what the relay runs: parse, the production hook (classifier, rules file plus
stored rules, thread following), then records facts, outcome, ledger and outbox jobs with
the raw message in one commit (`source` = "imap"). Diverted mail is moved to a folder only
after that commit; nothing is ever deleted, kept mail is left as it was (bodies are fetched
with BODY.PEEK, so nothing is marked read).

Resuming: the last handled UID is stored per (account, folder) with the folder's
UIDVALIDITY (`watch_state`) after each message, and the UID being handled before it is
recorded: found again after a crash, a message recorded as diverted at that UID is moved
without being posted again. On a changed UIDVALIDITY the mail that arrived since the watch
began is read again; the fingerprint recognises what was handled.

Fingerprint: sha256 over "imap", the owner's address and the message bytes. Not the UID:
UIDs are renumbered when UIDVALIDITY changes, and a message the owner moves back from the
diverted folder must be recognised as handled rather than diverted again. The owner is part
of it so that two watched mailboxes holding byte-identical copies get a post each, visible
to each owner (a post's audience is its recipients).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from imapclient import IMAPClient, imap_utf7
from imapclient.exceptions import IMAPClientError, LoginError
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from sluice.core.db import insert_ignoring_conflicts
from sluice.core.decision import RoutingDecision
from sluice.core.errors import ConfigError
from sluice.core.mail import Envelope, Mail
from sluice.core.settings import Settings
from sluice.core.tables import LedgerEntry, MessageRecord, RecipientOutcome, utcnow
from sluice.core.tables_watch import WatchState
from sluice.gateway.handler import message_facts, outbox_entries, parse_safely
from sluice.gateway.metrics import METRICS
from sluice.gateway.pipeline import FAIL_OPEN_RULE, PipelineHook, decide
from sluice.gateway.reply import Reply
from sluice.gateway.server import Gateway
from sluice.gateway.store import Store
from sluice.mailboxes.imap import IMAP_TIMEOUT, ImapUrl, connect, parse_imap_url

log = logging.getLogger(__name__)

DEFAULT_FOLDER = "INBOX"
DEFAULT_MOVE_TO = "Sluice/Diverted"
SOURCE = "imap"
#: Recorded as the ledger reply of a fall-back copy put back into the mailbox.
FALLBACK_REPLY = "fallback: put back into the mailbox"
_DIVERTED = "diverted"
_DELETED = b"\\Deleted"


@dataclass(frozen=True, slots=True)
class WatchSpec:
    """Which mailbox folder to follow, for whom, and where diverted mail goes."""

    url: ImapUrl
    password: str = field(repr=False)
    owner: str
    folder: str = DEFAULT_FOLDER
    move_to: str = DEFAULT_MOVE_TO
    #: On the first start, also handle this many of the newest messages already there.
    backlog: int = 0
    ca_file: Path | None = None

    @property
    def account(self) -> str:
        return self.url.label


@dataclass(frozen=True, slots=True)
class Position:
    """How far the watcher got in the folder."""

    uidvalidity: int
    last_uid: int
    watching_since: datetime
    pending_uid: int = 0


def imap_fingerprint(owner: str, raw: bytes) -> str:
    """Identity of a message in the owner's mailbox, whatever UID it has (see above)."""
    digest = hashlib.sha256(b"imap\0")
    digest.update(owner.lower().encode("utf-8", "surrogateescape"))
    digest.update(b"\0")
    digest.update(raw)
    return digest.hexdigest()


def envelope_sender(mail: Mail | None) -> str:
    """The Return-Path the delivering server wrote: the nearest thing to MAIL FROM."""
    if mail is None:
        return ""
    return mail.header("Return-Path").strip().strip("<>").strip()


def first_position(uidnext: int, existing: list[int], backlog: int) -> int:
    """The last UID counted as done on a first start: all mail present, except the newest
    `backlog` messages when asked for."""
    if backlog > 0:
        older = sorted(existing)[:-backlog]
        return older[-1] if older else 0
    return max(uidnext - 1, max(existing, default=0))


def wire_name(name: str, delimiter: str) -> str:
    """A folder name as the server spells it: "/" separates levels whatever the server's
    separator is; non-ASCII goes in modified UTF-7."""
    parts = [part for part in name.split("/") if part]
    if not parts:
        raise ConfigError(f"not a folder name: {name!r}")
    joined = delimiter.join(parts) if delimiter else "/".join(parts)
    return str(imap_utf7.encode(joined).decode("ascii"))


def rescan_cutoff(watching_since: datetime) -> datetime:
    """INTERNALDATE has whole seconds: mail of the second the watch began is included."""
    return watching_since.replace(microsecond=0)


# -- the database side ------------------------------------------------------------------------


def load_position(engine: Engine, account: str, folder: str) -> Position | None:
    with Session(engine) as session:
        state = session.exec(select(WatchState).where(
            col(WatchState.account) == account, col(WatchState.folder) == folder)).first()
    if state is None:
        return None
    return Position(state.uidvalidity, state.last_uid, state.watching_since,
                    state.pending_uid)


def save_position(engine: Engine, account: str, folder: str, position: Position) -> None:
    with Session(engine) as session:
        state = session.exec(select(WatchState).where(
            col(WatchState.account) == account, col(WatchState.folder) == folder)).first()
        if state is None:
            state = WatchState(account=account, folder=folder,
                               uidvalidity=position.uidvalidity)
        state.uidvalidity = position.uidvalidity
        state.last_uid = position.last_uid
        state.pending_uid = position.pending_uid
        state.watching_since = position.watching_since
        state.updated_at = utcnow()
        session.add(state)
        session.commit()


def recorded_status(engine: Engine, fingerprint: str, owner: str) -> str | None:
    """The owner's recorded outcome for a message, None when it was never recorded."""
    with engine.connect() as conn:
        return conn.execute(
            select(RecipientOutcome.status)
            .join(MessageRecord, col(MessageRecord.id) == col(RecipientOutcome.message_pk))
            .where(col(MessageRecord.fingerprint) == fingerprint,
                   col(RecipientOutcome.recipient) == owner)
            .order_by(col(RecipientOutcome.id).desc()).limit(1)).scalar_one_or_none()


# -- the IMAP side (blocking; run in a thread) ---------------------------------------------------


class Mailbox:
    """One logged-in connection with the watched folder selected read-write (for MOVE)."""

    def __init__(self, spec: WatchSpec, *, timeout: float = IMAP_TIMEOUT) -> None:
        self.client: IMAPClient = connect(spec.url, spec.password, ca_file=spec.ca_file,
                                          timeout=timeout)
        try:
            self.client.normalise_times = False  # INTERNALDATE with its zone
            capabilities = set(self.client.capabilities())
            if b"IDLE" not in capabilities:
                raise ConfigError(f"{spec.account} does not offer IDLE: it cannot be watched")
            self.can_move = b"MOVE" in capabilities
            self.can_uid_expunge = b"UIDPLUS" in capabilities
            delimiter = self._delimiter()
            self.folder = (DEFAULT_FOLDER if spec.folder.upper() == DEFAULT_FOLDER
                           else wire_name(spec.folder, delimiter))
            self.move_to = wire_name(spec.move_to, delimiter)
            selected = self.client.select_folder(self.folder)
            self.uidvalidity = int(str(selected[b"UIDVALIDITY"]))
            self.uidnext = int(str(selected.get(b"UIDNEXT", 0)))
            self._target_ready = False
        except BaseException:
            self.close()
            raise

    def _delimiter(self) -> str:
        listed = self.client.list_folders(directory="", pattern="")
        for _flags, delimiter, _name in listed:
            if delimiter:
                return delimiter.decode() if isinstance(delimiter, bytes) else str(delimiter)
        return "/"

    def uids_after(self, last_uid: int) -> list[int]:
        # "N:*" also matches the highest UID when that is below N (RFC 3501 6.4.8).
        found = self.client.search(["UID", f"{last_uid + 1}:*"])
        return sorted(uid for uid in found if uid > last_uid)

    def uids_since(self, moment: datetime) -> list[int]:
        """Messages whose INTERNALDATE is at or after `moment` (for a re-scan)."""
        candidates = self.client.search(["SINCE", (moment - timedelta(days=1)).date()])
        if not candidates:
            return []
        dates = self.client.fetch(candidates, ["INTERNALDATE"])
        cutoff = rescan_cutoff(moment)
        return sorted(uid for uid, data in dates.items()
                      if _aware(data.get(b"INTERNALDATE"), cutoff) >= cutoff)

    def fetch(self, uid: int, max_bytes: int) -> bytes | None:
        """The message's bytes, unseen; None when it is gone or over the size limit."""
        sizes = self.client.fetch([uid], ["RFC822.SIZE"])
        size = int(sizes.get(uid, {}).get(b"RFC822.SIZE", -1))
        if size < 0:
            return None
        if size > max_bytes:
            log.warning("UID %d is %d bytes, over the limit of %d: left where it is",
                        uid, size, max_bytes)
            return None
        body = self.client.fetch([uid], ["BODY.PEEK[]"]).get(uid, {}).get(b"BODY[]")
        return body if isinstance(body, bytes) else None

    def move(self, uid: int) -> None:
        """Move one message to the diverted folder: MOVE, else COPY + \\Deleted and, with
        UIDPLUS, UID EXPUNGE of that one UID. A plain EXPUNGE would also remove whatever
        else the owner marked deleted, so without UIDPLUS the mark stays for the owner's
        client to expunge."""
        self._prepare_target()
        if self.can_move:
            self.client.move([uid], self.move_to)
            return
        self.client.copy([uid], self.move_to)
        self.client.add_flags([uid], [_DELETED], silent=True)
        if self.can_uid_expunge:
            self.client.uid_expunge([uid])

    def _prepare_target(self) -> None:
        if self._target_ready:
            return
        if not self.client.folder_exists(self.move_to):
            try:
                self.client.create_folder(self.move_to)
            except IMAPClientError:
                if not self.client.folder_exists(self.move_to):  # not created meanwhile
                    raise
            self.client.subscribe_folder(self.move_to)
        self._target_ready = True

    def wait_for_news(self, renew_after: float, poll: float,
                      stopping: Callable[[], bool]) -> None:
        """IDLE until the server reports something, `renew_after` seconds pass, or a stop.

        imapclient's idle_check returns nothing, not an error, when the connection is gone;
        an empty answer before its timeout therefore ends the IDLE, and ending it (DONE
        waits for the server's reply) raises if the connection is dead.
        """
        self.client.idle()
        renew_at = time.monotonic() + renew_after
        while not stopping() and time.monotonic() < renew_at:
            started = time.monotonic()
            wait = max(min(poll, renew_at - started), 0.0)
            responses = self.client.idle_check(timeout=wait)
            if any(_is_news(response) for response in responses):
                break
            if not responses and time.monotonic() - started < wait / 2:
                break
        self.client.idle_done()

    def append(self, content: bytes) -> None:
        self.client.append(self.folder, content)

    def close(self) -> None:
        try:
            self.client.logout()
        except (IMAPClientError, OSError):
            with contextlib.suppress(IMAPClientError, OSError):
                self.client.shutdown()


def _is_news(response: Any) -> bool:
    """Anything but the server's keep-alive ("* OK Still here") may mean new mail."""
    return not (isinstance(response, tuple) and response and response[0] == b"OK")


def _aware(value: Any, default: datetime) -> datetime:
    if not isinstance(value, datetime):
        return default  # no date: re-scan it rather than miss it
    return value if value.tzinfo is not None else value.replace(tzinfo=default.tzinfo)


# -- the watcher -----------------------------------------------------------------------------


class Watcher:
    """Follows one folder, reconnecting after any drop, resuming by UID."""

    def __init__(self, spec: WatchSpec, settings: Settings, store: Store, engine: Engine,
                 hook: PipelineHook, *, on_posts: Callable[[], None] | None = None) -> None:
        self.spec = spec
        self.owner = spec.owner.lower()
        self.settings = settings
        self.store = store
        self.engine = engine
        self.hook = hook
        self.on_posts = on_posts
        self.position: Position | None = None
        #: Connections that got as far as being in step with the folder (tests wait on it).
        self.connections = 0
        #: Dropped or failed connections, and messages handled (recorded or moved).
        self.failures = 0
        self.handled = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: connect, catch up, IDLE; any failure → wait, reconnect, resume."""
        delay = self.settings.watch_reconnect_seconds
        while not stop.is_set():
            connected = self.connections
            try:
                await self._follow(stop)
            except LoginError as exc:
                raise ConfigError(f"{self.spec.account}: login refused: {exc}") from exc
            except ConfigError:
                raise
            except Exception as exc:
                self.failures += 1
                if self.connections > connected:
                    delay = self.settings.watch_reconnect_seconds
                log.warning("%s/%s: %s: %s; reconnecting in %.1f s", self.spec.account,
                            self.spec.folder, type(exc).__name__, exc, delay,
                            exc_info=log.isEnabledFor(logging.DEBUG))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                delay = min(delay * 2, self.settings.watch_reconnect_max_seconds)

    async def _follow(self, stop: asyncio.Event) -> None:
        box = await asyncio.to_thread(Mailbox, self.spec)
        try:
            await self._catch_up(box)
            self.connections += 1
            while not stop.is_set():
                await asyncio.to_thread(box.wait_for_news, self.settings.watch_idle_seconds,
                                        self.settings.watch_poll_seconds, stop.is_set)
                await self._sync(box)
        finally:
            await asyncio.to_thread(box.close)

    async def _catch_up(self, box: Mailbox) -> None:
        """Where to resume: the stored UID, a re-scan after a UIDVALIDITY change, or (first
        start) the mail present now; then whatever is newer."""
        account, folder = self.spec.account, self.spec.folder
        stored = await asyncio.to_thread(load_position, self.engine, account, folder)
        if stored is None:
            existing = await asyncio.to_thread(box.uids_after, 0) if self.spec.backlog else []
            position = Position(box.uidvalidity,
                                first_position(box.uidnext, existing, self.spec.backlog),
                                utcnow())
            await asyncio.to_thread(save_position, self.engine, account, folder, position)
        elif stored.uidvalidity != box.uidvalidity:
            log.warning("%s/%s: UIDVALIDITY changed (%d → %d); reading again the mail since %s",
                        account, folder, stored.uidvalidity, box.uidvalidity,
                        stored.watching_since.isoformat())
            uids = await asyncio.to_thread(box.uids_since, stored.watching_since)
            for uid in uids:  # the position is saved only once the re-scan is complete
                await self._take(box, uid, interrupted=False)
            position = Position(box.uidvalidity, max([box.uidnext - 1, *uids]),
                                stored.watching_since)
            await asyncio.to_thread(save_position, self.engine, account, folder, position)
        else:
            position = stored
        self.position = position
        await self._sync(box)

    async def _sync(self, box: Mailbox) -> None:
        assert self.position is not None
        for uid in await asyncio.to_thread(box.uids_after, self.position.last_uid):
            interrupted = uid == self.position.pending_uid
            if not interrupted:
                await self._save(dataclasses.replace(self.position, pending_uid=uid))
            await self._take(box, uid, interrupted=interrupted)
            await self._save(dataclasses.replace(self.position, last_uid=uid, pending_uid=0))

    async def _save(self, position: Position) -> None:
        await asyncio.to_thread(save_position, self.engine, self.spec.account,
                                self.spec.folder, position)
        self.position = position

    async def _take(self, box: Mailbox, uid: int, *, interrupted: bool) -> None:
        raw = await asyncio.to_thread(box.fetch, uid, self.settings.max_message_size)
        if raw is None:
            return
        if await self.handle(raw, interrupted=interrupted):
            await asyncio.to_thread(box.move, uid)
        self.handled += 1

    async def handle(self, raw: bytes, *, interrupted: bool = False) -> bool:
        """Decide, post and record one message; True when it is to leave the folder.

        Recorded before it is moved. A message recorded before is left where it is (the
        owner moved it back, or a re-scan found it), except when `interrupted`: the watcher
        stopped between recording and moving this very UID, so it only moves it now.
        """
        owner = self.owner
        print_ = imap_fingerprint(owner, raw)
        status = await asyncio.to_thread(recorded_status, self.engine, print_, owner)
        if status is not None:
            return interrupted and status == _DIVERTED
        already = await self.store.delivered(print_)
        if owner in already:
            return False  # a fall-back copy this watcher put back
        mail = parse_safely(raw, Envelope("", (owner,)))
        mail_from = envelope_sender(mail)
        envelope = Envelope(mail_from, (owner,))
        if mail is not None:
            mail = dataclasses.replace(mail, envelope=envelope)
        decision = await decide(self.hook, mail, (owner,))
        try:
            outbox = outbox_entries(self.settings, mail, decision, print_, mail_from, (owner,),
                                    {})
        except Exception:
            log.exception("could not prepare the post of %s; leaving it in place", print_[:16])
            decision = RoutingDecision.deliver_all((owner,), decision.verdict,
                                                   rule=FAIL_OPEN_RULE)
            outbox = []
        action = decision.for_recipient(owner)
        reply = (Reply(250, f"2.0.0 kept in {self.spec.folder}") if action.keeps_mail
                 else Reply(250, f"2.0.0 OK, posted to {action.destination}"))
        facts = message_facts(self.settings, print_, mail, envelope, decision, {owner: reply},
                              {}, SOURCE, outbox)
        await self.store.record(facts)  # StorageUnavailable: not moved, tried again later
        METRICS.observe_message(facts)
        if outbox and self.on_posts is not None:
            self.on_posts()
        return not action.keeps_mail


# -- the process -----------------------------------------------------------------------------


class WatchService:
    """The watch process: the gateway's wiring without listeners (rules with reloads, store,
    destinations, outbox worker, digests), plus the watcher."""

    def __init__(self, settings: Settings, spec: WatchSpec) -> None:
        if settings.listen:
            settings = settings.model_copy(update={"listen": []})
        self.spec = spec
        self.gateway = Gateway(settings, fallback=self._fall_back)
        self.watcher = Watcher(spec, settings, self.gateway.store, self.gateway.engine,
                               self.gateway.handler.hook, on_posts=self.gateway.worker.wake)

    async def run(self, stop: asyncio.Event) -> None:
        await self.gateway.start()
        try:
            await self.watcher.run(stop)
        finally:
            await self.gateway.stop()

    async def _fall_back(self, mail_from: str, recipients: tuple[str, ...],
                         content: bytes) -> set[str]:
        """The destination stayed down: put the message back into the watched folder, as
        "delivered as mail". Its fingerprint goes into the ledger first, so the watcher
        leaves the copy where it is."""
        owner = self.watcher.owner
        if owner not in (r.lower() for r in recipients):
            log.error("fall-back for %s, who is not this mailbox's owner", recipients)
            return set()
        try:
            await asyncio.to_thread(self._put_back, imap_fingerprint(owner, content), content)
        except Exception:
            log.exception("could not put a fall-back copy back into %s", self.spec.account)
            return set(recipients)
        return set()

    def _put_back(self, print_: str, content: bytes) -> None:
        engine = self.gateway.engine
        with Session(engine) as session:
            insert_ignoring_conflicts(
                session.connection(), LedgerEntry.__table__,  # type: ignore[attr-defined]
                [{"fingerprint": print_, "recipient": self.watcher.owner,
                  "reply": FALLBACK_REPLY, "at": utcnow()}], ["fingerprint", "recipient"])
            session.commit()
        box = Mailbox(self.spec)
        try:
            box.append(content)
        finally:
            box.close()


# -- the command -----------------------------------------------------------------------------


def spec_from_args(args: argparse.Namespace, password: str) -> WatchSpec:
    url = parse_imap_url(args.source)
    owner = (args.owner or (url.user if "@" in url.user else "")).strip().lower()
    if "@" not in owner:
        raise ConfigError("--owner ADDRESS is needed: the IMAP user name is not an address")
    if args.backlog < 0:
        raise ConfigError("--backlog must be 0 or more")
    return WatchSpec(url, password, owner, folder=args.folder or url.folder or DEFAULT_FOLDER,
                     move_to=args.move_to, backlog=args.backlog, ca_file=args.ca_file)


def cmd_watch(args: argparse.Namespace) -> int:
    from sluice.gateway.commands import settings_from_args, stop_event
    from sluice.mailboxes.imap import imap_password

    settings = settings_from_args(args, listen=[])
    spec = spec_from_args(args, imap_password())

    async def main() -> None:
        service = WatchService(settings, spec)
        print(f"sluice watch: following {spec.account}/{spec.folder} for {spec.owner}, "
              f"diverted mail to {spec.move_to}", file=sys.stderr, flush=True)
        await service.run(stop_event())

    asyncio.run(main())
    return 0


def register(commands: Any) -> None:
    from sluice.gateway.commands import add_settings_arguments

    parser = commands.add_parser(
        "watch", help="follow an IMAP mailbox with IDLE and divert its new mail",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", metavar="SOURCE",
                        help="imaps://user@host[:port]/FOLDER or imap://… (password from "
                             "SLUICE_IMAP_PASSWORD or a prompt)")
    parser.add_argument("--folder", help=f"folder to follow (default: the URL's, else "
                                         f"{DEFAULT_FOLDER})")
    parser.add_argument("--owner", metavar="ADDR",
                        help="the mailbox owner's address (default: the IMAP user name)")
    parser.add_argument("--move-to", default=DEFAULT_MOVE_TO, metavar="FOLDER",
                        help=f"where diverted mail is moved, '/' between levels "
                             f"(default {DEFAULT_MOVE_TO}; created when missing)")
    parser.add_argument("--backlog", type=int, default=0, metavar="N",
                        help="on the first start, also handle the newest N messages present")
    parser.add_argument("--ca-file", type=Path, metavar="PEM",
                        help="certificates to trust for the IMAP server's TLS")
    add_settings_arguments(parser)
    parser.set_defaults(func=cmd_watch)
