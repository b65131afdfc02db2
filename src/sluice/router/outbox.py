"""The outbox: posts written durably with the message, published by a worker with retries.

A destination that stays down past the job's deadline makes the worker deliver the original
message to the diverted recipients instead (fall-back), marked with a header: nothing that
was acknowledged is lost. Jobs are claimed with a lease, so a worker that dies mid-job
leaves it to be picked up again once the lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, update
from sqlmodel import Session, col

from sluice.core.mail import Mail
from sluice.core.post import Post
from sluice.core.rawsql import Raw
from sluice.core.tables import as_utc, utcnow
from sluice.core.tables_router import DONE, FAILED, FALLBACK, MAIL_OUT, PENDING, OutboxJob
from sluice.router.blobs import BlobStore
from sluice.router.destinations import Destination, LocalDestination, PublishError
from sluice.router.post import post_from_json, post_to_json
from sluice.space.ingest import Batch

log = logging.getLogger(__name__)

FALLBACK_HEADER = "X-Sluice-Fallback"
#: Jobs claimed per round, lease per claim, longest wait between two attempts.
CLAIM_BATCH = 20
#: After a round that emptied the outbox, wait this long before claiming again.
GATHER_SECONDS = 0.05
#: Bytes of parsed messages handed over by the gateway and kept until published, and how
#: many of its posts (a post is the job's JSON already decoded: about 15 µs less a job).
PARSED_BUDGET = 16 * 1024 * 1024
MAX_HANDED_POSTS = 4096
CLAIM_LEASE = timedelta(minutes=2)
MAX_BACKOFF = timedelta(minutes=5)
FIRST_BACKOFF = timedelta(seconds=5)

_FINISH_JOB = ("UPDATE outbox_job SET state = :state, link = :link, done_at = :done_at, "
               "claimed_until = NULL, attempts = :attempts WHERE id = :id")
#: What the worker reads of a due job. Plain SQL: loading the batch as ORM objects cost about
#: 30 µs a job on a quiet machine and 75 µs beside the gateway (docs/performance.md).
_CLAIMED_COLUMNS = ("id", "key", "destination", "post_json", "raw_sha256", "recipients",
                    "mail_from", "attempts", "deadline_at", "last_error")
_DUE_JOBS = (f"SELECT {', '.join(_CLAIMED_COLUMNS)} FROM outbox_job "
             "WHERE state = :pending AND next_attempt_at <= :now "
             "AND (claimed_until IS NULL OR claimed_until < :now) ORDER BY id LIMIT :limit")
_LEASE_JOBS = "UPDATE outbox_job SET claimed_until = :until WHERE id = :id"

#: Deliver (mail_from, recipients, content); returns the recipients to try again later.
FallbackSender = Callable[[str, tuple[str, ...], bytes], Awaitable[set[str]]]


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A due outbox job as the worker works it: the columns it reads, nothing it writes."""

    id: int
    key: str
    destination: str
    post_json: str
    raw_sha256: str
    recipients: str
    mail_from: str
    attempts: int
    deadline_at: datetime
    last_error: str

    @classmethod
    def from_row(cls, row: Any) -> ClaimedJob:
        values = dict(zip(_CLAIMED_COLUMNS, row, strict=True))
        deadline = values["deadline_at"]
        if isinstance(deadline, str):  # SQLite: SQLAlchemy's text form, naive UTC
            values["deadline_at"] = datetime.fromisoformat(deadline)
        return cls(**values)


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """What the gateway writes, in the transaction that records the message."""

    post: Post
    raw_sha256: str
    recipients: tuple[str, ...]
    mail_from: str
    deadline_at: datetime
    blob: dict[str, Any]  # the raw message's Blob row, committed with the job

    def row(self) -> dict[str, Any]:
        now = utcnow()
        return {
            "key": self.post.key, "destination": self.post.destination,
            "fingerprint": self.post.fingerprint, "post_json": post_to_json(self.post),
            "raw_sha256": self.raw_sha256, "recipients": "\n".join(self.recipients),
            "mail_from": self.mail_from, "state": PENDING, "attempts": 0,
            "next_attempt_at": now, "deadline_at": self.deadline_at,
            "created_at": now, "last_error": "", "link": "",
        }


class _Parsed:
    """Messages parsed by the gateway in this process, by the raw message's sha256, and its
    posts, by job key, until the worker publishes them; the oldest are dropped past a byte
    budget or a count (a job whose message or post is not here reads it from the database,
    as after a restart)."""

    def __init__(self, budget: int, max_posts: int = MAX_HANDED_POSTS) -> None:
        self.budget = budget
        self.max_posts = max_posts
        self._mails: OrderedDict[str, Mail] = OrderedDict()
        self._posts: OrderedDict[str, Post] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # put on the event loop, take in the worker's thread

    def put(self, raw_sha256: str, mail: Mail, posts: Iterable[Post] = ()) -> None:
        with self._lock:
            for post in posts:
                self._posts[post.key] = post
            while len(self._posts) > self.max_posts:
                self._posts.popitem(last=False)
            if raw_sha256 in self._mails:
                return
            self._mails[raw_sha256] = mail
            self._bytes += len(mail.raw)
            while self._bytes > self.budget and self._mails:
                self._bytes -= len(self._mails.popitem(last=False)[1].raw)

    def take_post(self, key: str) -> Post | None:
        with self._lock:
            return self._posts.pop(key, None)

    def take(self, raw_sha256: str) -> Mail | None:
        with self._lock:
            mail = self._mails.pop(raw_sha256, None)
            if mail is not None:
                self._bytes -= len(mail.raw)
            return mail


def backoff(attempts: int) -> timedelta:
    delay: timedelta = FIRST_BACKOFF * (2 ** max(attempts - 1, 0))
    return min(delay, MAX_BACKOFF)


def fallback_header(destination: str, reason: str) -> bytes:
    reason = " ".join(reason.split())[:200]
    return (f"{FALLBACK_HEADER}: destination {destination} unavailable ({reason}); "
            "delivered as mail\r\n").encode("utf-8", "replace")


class OutboxWorker:
    def __init__(self, engine: Engine, blobs: BlobStore,
                 destinations: Mapping[str, Destination], fallback: FallbackSender,
                 *, poll_seconds: float = 1.0,
                 on_published: Callable[[Post], Awaitable[None]] | None = None) -> None:
        self.engine = engine
        self.blobs = blobs
        self.destinations = destinations
        self.fallback = fallback
        self.poll_seconds = poll_seconds
        self.on_published = on_published
        self._wake = asyncio.Event()
        #: time.monotonic() when the last round finished without an error (health checks).
        self.last_round: float | None = None
        self._parsed = _Parsed(PARSED_BUDGET)


    def wake(self, raw_sha256: str = "", mail: Mail | None = None,
             posts: Iterable[Post] = ()) -> None:
        """New work was committed: look now rather than at the next poll. A gateway in this
        process hands over the message it parsed and its posts, so publishing them parses
        the message and decodes the posts no second time."""
        if mail is not None and raw_sha256:
            self._parsed.put(raw_sha256, mail, posts)
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                handled = await self.run_once(stop)
                self.last_round = time.monotonic()
            except Exception:
                log.exception("outbox round failed; trying again")
                handled = 0
            if handled >= CLAIM_BATCH:
                continue  # a backlog: work it without a pause
            if handled:
                # Let more posts gather before the next claim: a round's claim and commit
                # are then shared by more posts, and the event loop (the SMTP sessions)
                # gets the pause to itself. Adds at most GATHER_SECONDS to a post's lag.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=GATHER_SECONDS)
                continue
            self._wake.clear()
            waiters = [asyncio.ensure_future(self._wake.wait()),
                       asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waiters, timeout=self.poll_seconds,
                               return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    async def run_once(self, stop: asyncio.Event | None = None) -> int:
        """Claim due jobs and work them; returns how many were handled. Once `stop` is set,
        the job in hand is finished and the other claims are released at once, so another
        worker need not wait for their lease to run out."""
        jobs, published = await asyncio.to_thread(self._claim)
        for job, post in published:
            await self._after(job, post)
        for index, job in enumerate(jobs):
            if stop is not None and stop.is_set():
                await asyncio.to_thread(self._release, jobs[index:])
                return index + len(published)
            await self._work(job)
        return len(jobs) + len(published)

    def _release(self, jobs: list[ClaimedJob]) -> None:
        with Session(self.engine) as session:
            session.execute(update(OutboxJob)
                            .where(col(OutboxJob.id).in_([j.id for j in jobs]),
                                   col(OutboxJob.state) == PENDING)
                            .values(claimed_until=None))
            session.commit()

    def _claim(self) -> tuple[list[ClaimedJob], list[tuple[ClaimedJob, Post]]]:
        """Claim due jobs; publish those for local destinations right in the claiming
        transaction. Returns the claimed jobs still to work and the ones published.

        One commit then finishes a whole batch of shared-space posts (a commit per post
        made the worker compete with the gateway's own commits for the database). On
        PostgreSQL the claim's row locks (SKIP LOCKED) keep other workers off these jobs
        until that commit. If any local publication fails, the batch is rolled back and its
        jobs are worked one by one (each with its own retry), so one bad post cannot hold
        up the others.
        """
        now = utcnow()
        with self.engine.connect() as conn:
            # Begun explicitly: Raw's statements bypass SQLAlchemy, whose commit() would
            # otherwise see no transaction and do nothing.
            conn.begin()
            raw = Raw(conn)
            query = _DUE_JOBS
            if conn.dialect.name == "postgresql":
                query += " FOR UPDATE SKIP LOCKED"
            params = {"pending": PENDING, "now": now, "limit": CLAIM_BATCH}
            jobs = [ClaimedJob.from_row(row) for row in raw.all(query, params)]
            if not jobs:
                conn.rollback()
                return [], []
            try:
                published = self._publish_batch(conn, jobs, now)
            except Exception:
                log.exception("publishing %d posts in one transaction failed; "
                              "working these jobs one by one", len(jobs))
                conn.rollback()
                conn.begin()
                raw = Raw(conn)  # claimed again, rows locked again
                jobs = [ClaimedJob.from_row(row) for row in raw.all(query, params)]
                published = []
            done = {job.id for job, _ in published}
            rest = [job for job in jobs if job.id not in done]
            raw.executemany(_LEASE_JOBS, [{"id": job.id, "until": now + CLAIM_LEASE}
                                          for job in rest])
            conn.commit()
            return rest, published

    def _publish_batch(self, conn: Connection, jobs: list[ClaimedJob],
                       now: datetime) -> list[tuple[ClaimedJob, Post]]:
        """First the work that writes nothing (parse, sanitise) for every job, then the
        writes: on SQLite the batch holds the one write lock only while it writes."""
        work = []
        for job in jobs:
            destination = self.destinations.get(job.destination)
            if not isinstance(destination, LocalDestination) or now >= as_utc(job.deadline_at):
                continue
            post = self._parsed.take_post(job.key) or post_from_json(job.post_json)
            work.append((job, destination, post, destination.prepare_in(
                conn, post, job.raw_sha256, self._parsed.take(job.raw_sha256))))
        published: list[tuple[ClaimedJob, Post]] = []
        finished = []
        batch = Batch()
        for job, destination, post, prepared in work:
            result = destination.publish_prepared(conn, prepared, batch)
            finished.append({"id": job.id, "state": DONE, "link": result.link, "done_at": now,
                             "attempts": job.attempts + 1})
            published.append((job, post))
        batch.flush(conn)
        Raw(conn).executemany(_FINISH_JOB, finished)
        return published

    async def _work(self, job: ClaimedJob) -> None:
        if job.destination == MAIL_OUT:
            await self._send_mail(job)
            return
        destination = self.destinations.get(job.destination)
        if utcnow() >= as_utc(job.deadline_at) or destination is None:
            reason = job.last_error or ("no such destination configured" if destination is None
                                        else "not published before its deadline")
            await self._fall_back(job, reason)
            return
        post = post_from_json(job.post_json)
        if isinstance(destination, LocalDestination):
            # Post and job completion in one transaction: exactly once, one commit.
            try:
                await asyncio.to_thread(self._publish_locally, job, destination, post)
            except Exception as exc:
                log.exception("destination %s failed", job.destination)
                await asyncio.to_thread(self._retry, job, f"{type(exc).__name__}: {exc}")
                return
            await self._after(job, post)
            return
        try:
            published = await destination.publish(post, job.raw_sha256)
        except PublishError as exc:
            await asyncio.to_thread(self._retry, job, str(exc))
            return
        except Exception as exc:  # a bug in a destination must not lose the post
            log.exception("destination %s failed", job.destination)
            await asyncio.to_thread(self._retry, job, f"{type(exc).__name__}: {exc}")
            return
        await asyncio.to_thread(self._finish, job, DONE, published.link)
        await self._after(job, post)

    async def _after(self, job: ClaimedJob, post: Post) -> None:
        if self.on_published is not None:
            try:
                await self.on_published(post)
            except Exception:  # a note to the sender is a courtesy, never a failure
                log.exception("after-publication step failed for %s", job.key)

    def _publish_locally(self, job: ClaimedJob, destination: LocalDestination,
                         post: Post) -> None:
        with self.engine.begin() as conn:
            published = destination.publish_in(conn, post, job.raw_sha256)
            conn.execute(update(OutboxJob).where(col(OutboxJob.id) == job.id).values(
                state=DONE, link=published.link, done_at=utcnow(), claimed_until=None,
                attempts=job.attempts + 1))

    async def _fall_back(self, job: ClaimedJob, reason: str) -> None:
        recipients = tuple(r for r in job.recipients.split("\n") if r)
        try:
            raw = await asyncio.to_thread(self.blobs.get, job.raw_sha256)
        except (OSError, KeyError) as exc:
            log.error("outbox job %s: message blob missing: %s", job.key, exc)
            await asyncio.to_thread(self._retry, job, f"blob missing: {exc}")
            return
        content = fallback_header(job.destination, reason) + raw
        remaining = await self.fallback(job.mail_from, recipients, content)
        if remaining:
            await asyncio.to_thread(self._retry, job, "fall-back delivery deferred",
                                    recipients=tuple(sorted(remaining)))
            return
        log.warning("outbox job %s: destination %s down past its deadline; delivered as mail",
                    job.key, job.destination)
        await asyncio.to_thread(self._finish, job, FALLBACK, "")

    async def _send_mail(self, job: ClaimedJob) -> None:
        """Mail written by Sluice itself (a space comment for the thread's mail users):
        handed to the upstream like a fall-back, retried until its deadline, never posted."""
        recipients = tuple(r for r in job.recipients.split("\n") if r)
        if utcnow() >= as_utc(job.deadline_at):
            log.error("outbox job %s: mail to %s not handed on before its deadline: %s",
                      job.key, ", ".join(recipients), job.last_error)
            await asyncio.to_thread(self._finish, job, FAILED, "")
            return
        try:
            content = await asyncio.to_thread(self.blobs.get, job.raw_sha256)
        except (OSError, KeyError) as exc:
            await asyncio.to_thread(self._retry, job, f"blob missing: {exc}")
            return
        remaining = await self.fallback(job.mail_from, recipients, content)
        if remaining:
            await asyncio.to_thread(self._retry, job, "upstream deferred the mail",
                                    recipients=tuple(sorted(remaining)))
            return
        await asyncio.to_thread(self._finish, job, DONE, "")

    def _retry(self, job: ClaimedJob, error: str,
               recipients: tuple[str, ...] | None = None) -> None:
        values: dict[str, Any] = {
            "attempts": job.attempts + 1, "last_error": error[:1024], "claimed_until": None,
            "next_attempt_at": utcnow() + backoff(job.attempts + 1),
        }
        if recipients is not None:
            values["recipients"] = "\n".join(recipients)
        with Session(self.engine) as session:
            session.execute(update(OutboxJob).where(col(OutboxJob.id) == job.id).values(**values))
            session.commit()

    def _finish(self, job: ClaimedJob, state: str, link: str) -> None:
        with Session(self.engine) as session:
            session.execute(update(OutboxJob).where(col(OutboxJob.id) == job.id).values(
                state=state, link=link, done_at=utcnow(), claimed_until=None,
                attempts=job.attempts + 1))
            session.commit()

