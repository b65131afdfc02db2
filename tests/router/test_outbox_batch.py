"""The worker publishes a batch of shared-space posts in one transaction, and a post that
cannot be published does not hold up the others."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, Engine
from sqlmodel import Session, col, select

from sluice.core.db import init_schema, make_engine
from sluice.core.mail import Envelope, Mail
from sluice.core.parse import parse
from sluice.core.post import Post
from sluice.core.settings import load_settings
from sluice.core.tables_router import DONE, PENDING, Blob, OutboxJob
from sluice.core.tables_space import PostRecipient, SpacePost
from sluice.core.verdict import Verdict
from sluice.router.blobs import BlobStore, blob_row
from sluice.router.destinations import Published, SpaceDestination
from sluice.router.outbox import OutboxEntry, OutboxWorker, _Parsed
from sluice.router.post import build_post, post_from_json, post_to_json
from sluice.space.ingest import Batch, Prepared

SENDER = "pat@example.com"


class FlakySpace(SpaceDestination):
    """The shared space, except that posts whose subject says so fail."""

    def publish_prepared(self, conn: Connection, prepared: Prepared,
                         batch: Batch | None = None) -> Published:
        if "broken" in prepared.post.subject:
            raise RuntimeError("cannot publish this one")
        return super().publish_prepared(conn, prepared, batch)


def queue(engine: Engine, subjects: list[str], first: int = 0) -> None:
    with Session(engine) as session:
        for number, subject in enumerate(subjects, start=first):
            raw = (f"From: {SENDER}\r\nTo: team@example.com\r\nSubject: {subject}\r\n"
                   f"Message-ID: <m{number}@example.com>\r\n\r\nnews {number}\r\n").encode()
            blob = blob_row(raw)
            post = build_post(parse(raw), None, destination="team", fingerprint=f"f{number:02d}",
                              recipients=("alice@example.com",), base_url="http://sluice.test")
            entry = OutboxEntry(post, blob["sha256"], ("alice@example.com",), SENDER,
                                datetime.now(UTC) + timedelta(hours=1), blob)
            session.execute(Blob.__table__.insert().values(**blob))  # type: ignore[attr-defined]
            session.execute(OutboxJob.__table__.insert().values(  # type: ignore[attr-defined]
                **entry.row()))
        session.commit()


def jobs(engine: Engine) -> dict[str, OutboxJob]:
    with Session(engine) as session:
        return {job.fingerprint: job for job in session.exec(select(OutboxJob)
                                                              .order_by(col(OutboxJob.id)))}


async def no_fallback(mail_from: str, recipients: tuple[str, ...], content: bytes) -> set[str]:
    raise AssertionError("nothing here falls back")


def test_batch_is_published_and_one_bad_post_is_retried_alone(tmp_path: Path) -> None:
    engine = make_engine(load_settings(None, data_dir=tmp_path))
    init_schema(engine)
    queue(engine, ["one", "two broken", "three", "four"])
    published: list[str] = []

    async def after(post: Post) -> None:
        published.append(post.subject)

    worker = OutboxWorker(engine, BlobStore(engine), {"team": FlakySpace("team", "team", engine)},
                          no_fallback, on_published=after)

    assert asyncio.run(worker.run_once()) == 4
    state = jobs(engine)
    assert {f: (j.state, j.attempts) for f, j in state.items()} == {
        "f00": (DONE, 1), "f01": (PENDING, 1), "f02": (DONE, 1), "f03": (DONE, 1)}
    assert "cannot publish this one" in state["f01"].last_error
    assert sorted(published) == ["four", "one", "three"]
    assert asyncio.run(worker.run_once()) == 0  # the broken one backs off; nothing twice

    # A batch of good posts goes through together: every job done, every link set.
    queue(engine, ["five", "six"], first=4)
    assert asyncio.run(worker.run_once()) == 2
    state = jobs(engine)
    assert all(state[f].state == DONE and state[f].link for f in ("f00", "f02", "f03", "f04",
                                                                  "f05"))
    assert sorted(published) == ["five", "four", "one", "six", "three"]


class CountingSpace(SpaceDestination):
    """The shared space, counting how many posts came with the gateway's parsed message."""

    handed_over = 0
    posts_handed_over = 0
    handed_posts: frozenset[int] = frozenset()

    def prepare_in(self, conn: Connection, post: Post, raw_sha256: str,
                   mail: Mail | None = None) -> Prepared:
        self.handed_over += mail is not None
        self.posts_handed_over += id(post) in self.handed_posts
        return super().prepare_in(conn, post, raw_sha256, mail)


def test_a_message_handed_over_by_the_gateway_is_posted_as_if_parsed_from_the_blob(
        tmp_path: Path) -> None:
    rows = []
    for handed in (False, True):
        engine = make_engine(load_settings(None, data_dir=tmp_path / str(handed)))
        init_schema(engine)
        queue(engine, ["news with <b>markup</b>"])
        space = CountingSpace("team", "team", engine)
        worker = OutboxWorker(engine, BlobStore(engine), {"team": space}, no_fallback)
        with Session(engine) as session:
            raw = session.exec(select(Blob)).one().data
        envelope = Envelope(SENDER, ("alice@example.com",))
        if handed:  # as the gateway does after its commit: its parse, with the SMTP envelope,
            # and the post it built (here the same one built again: the JSON is not read)
            handed_post = build_post(parse(raw), None, destination="team", fingerprint="f00",
                                     recipients=("alice@example.com",),
                                     base_url="http://sluice.test")
            space.handed_posts = frozenset({id(handed_post)})
            worker.wake(blob_row(raw)["sha256"], parse(raw, envelope), (handed_post,))
        assert asyncio.run(worker.run_once()) == 1
        assert space.handed_over == handed
        assert space.posts_handed_over == handed
        with Session(engine) as session:
            post = session.exec(select(SpacePost)).one().model_dump()
            recipients = sorted((r.address, r.role) for r in session.exec(select(PostRecipient)))
        rows.append(({k: v for k, v in post.items() if k not in ("posted_at", "last_activity_at")},
                     recipients))
    assert rows[0] == rows[1]


def test_a_post_survives_its_json_unchanged() -> None:
    """The worker takes a post handed over by the gateway instead of decoding the job's JSON:
    both must be the same post."""
    raw = (b"From: Pat <pat@example.com>\r\nTo: a@example.com\r\nSubject: =?utf-8?q?Pr=C3=BCfung?="
           b"\r\nMessage-ID: <x@example.com>\r\nIn-Reply-To: <w@example.com>\r\n"
           b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain;"
           b" charset=utf-8\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n--b\r\nContent-Type: application/pdf\r\n"
           b"Content-Disposition: attachment; filename=a.pdf\r\n\r\n%PDF\r\n--b--\r\n")
    post = build_post(parse(raw), Verdict("material", 0.8125, ("a reason",), "m"),
                      destination="team", fingerprint="f", recipients=("a@example.com",),
                      base_url="http://sluice.test")
    assert post.attachments and post.in_reply_to and post.confidence == 0.8125
    assert post_from_json(post_to_json(post)) == post


def test_handed_over_messages_are_kept_within_a_byte_budget() -> None:
    kept = _Parsed(budget=2500)
    mails = {name: parse(f"Subject: {name}\r\n\r\n{'x' * 1000}\r\n".encode())
             for name in ("a", "b", "c")}
    for name, mail in mails.items():
        kept.put(name, mail)
    assert kept.take("a") is None  # the oldest went when "c" came
    assert kept.take("b") is mails["b"] and kept.take("b") is None  # taken once
    assert kept.take("c") is mails["c"]
