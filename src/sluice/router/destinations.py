"""Destinations: where a diverted message is published.

Every destination publishes a Post idempotently by its key where the receiving side allows
it: the shared space by a unique constraint, webhooks by the `X-Sluice-Delivery` header a
receiver can deduplicate on, chat systems (through apprise) at least once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import httpx
from sqlalchemy import Connection, Engine

from sluice.core.errors import ConfigError
from sluice.core.mail import Mail
from sluice.core.post import Post
from sluice.space.ingest import (
    Batch,
    Prepared,
    ingest_prepared,
    load_raw,
    post_path,
    prepare,
    prepare_mail,
)

#: A destination that does not answer within this many seconds has failed this attempt.
PUBLISH_TIMEOUT = 20.0
SIGNATURE_HEADER = "X-Sluice-Signature"
DELIVERY_HEADER = "X-Sluice-Delivery"


class PublishError(Exception):
    """This attempt failed; the outbox retries until the deadline, then falls back."""


@dataclass(frozen=True, slots=True)
class Published:
    link: str


class Destination(Protocol):
    name: str

    async def publish(self, post: Post, raw_sha256: str) -> Published: ...


def webhook_payload(post: Post) -> dict[str, Any]:
    """The JSON object a generic webhook receives."""
    return {
        "key": post.key,
        "message_id": post.message_id,
        "subject": post.subject,
        "sender": post.sender,
        "sender_name": post.sender_name,
        "category": post.category,
        "confidence": post.confidence,
        "received_at": post.received_at.isoformat(),
        "text": post.excerpt,
        "url": post.url,
        "attachments": [asdict(a) for a in post.attachments],
        "recipients": list(post.recipients),
        "destination": post.destination,
    }


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookDestination:
    def __init__(self, name: str, url: str, secret: str = "") -> None:
        self.name, self.url, self.secret = name, url, secret

    async def publish(self, post: Post, raw_sha256: str) -> Published:
        body = json.dumps(webhook_payload(post), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", DELIVERY_HEADER: post.key,
                   "User-Agent": "Sluice"}
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        try:
            async with httpx.AsyncClient(timeout=PUBLISH_TIMEOUT) as client:
                response = await client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise PublishError(f"webhook {self.name}: {type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            raise PublishError(f"webhook {self.name}: HTTP {response.status_code}")
        return Published(link=post.url)


#: Services whose plugins declare plain text but whose receivers render Markdown.
_MARKDOWN_SERVICES = frozenset({"Mattermost", "Zulip"})
#: Generic receivers (apprise's json://, xml://, form://): what reads them is unknown, so
#: they get plain text.
_PLAIN_SERVICES = frozenset({"JSON", "XML", "Form"})


def _one_line(text: str) -> str:
    return " ".join(text.split())


def chat_text(post: Post, *, markdown: bool = False,
              subject_in_body: bool = False) -> tuple[str, str]:
    """Title and body for a chat message: subject, sender, excerpt, attachments, link.

    `markdown` renders the sender in bold and the excerpt as a quote (Mattermost, Slack,
    Discord, Matrix, Teams and Zulip show Markdown); `subject_in_body` puts the subject at the
    top of the body for services whose messages have no title (Mattermost), and the title is
    then empty. The link to the full message is a bare URL, which every client links.
    """
    subject = _one_line(post.subject) or "(no subject)"
    who = _one_line(post.sender_name)
    sender = f"{who} ({post.sender})" if who and who != post.sender else post.sender
    kind = post.category or "mail"
    excerpt = post.excerpt.strip()
    names = ", ".join(a.filename for a in post.attachments)
    lines: list[str] = []
    if markdown:
        if subject_in_body:
            lines += [f"**{subject}**"]
        lines += [f"From **{sender}** · {kind}"]
        if excerpt:
            lines += [""] + [f"> {line}".rstrip() for line in excerpt.splitlines()]
        if names:
            lines += ["", "Attachments: " + ", ".join(
                f"`{a.filename}`" for a in post.attachments)]
    else:
        if subject_in_body:
            lines += [subject]
        lines += [f"From {sender} ({kind})"]
        if excerpt:
            lines += ["", excerpt]
        if names:
            lines += ["", f"Attachments: {names}"]
    lines += ["", f"Full message: {post.url}"]
    return ("" if subject_in_body else subject), "\n".join(lines)


class AppriseDestination:
    """Slack, Teams, Mattermost, Matrix, Zulip, Discord… through apprise's URL schemes.

    The body is Markdown for services that render it (declared by the apprise plugin, or
    known: Mattermost, Zulip), plain text otherwise; services without a title (Mattermost)
    get the subject as the body's first line. apprise answers only "sent" or "not sent":
    not sent raises PublishError and the outbox retries.
    """

    def __init__(self, name: str, url: str) -> None:
        self.name, self.url = name, url
        with warnings.catch_warnings():
            # apprise's plugin loading imports the stdlib's imghdr (deprecated since 3.11,
            # gone in 3.13, where apprise ships a shim): not ours to fix, and harmless.
            warnings.filterwarnings("ignore", message="'imghdr' is deprecated",
                                    category=DeprecationWarning)
            import apprise

            self._apprise = apprise.Apprise()
            if not self._apprise.add(url):
                raise ConfigError(f"destination {name}: apprise does not understand {url!r}")
        service = self._apprise[0]
        self.markdown = _renders_markdown(service)
        self.titled = int(getattr(service, "title_maxlen", 0) or 0) > 0
        self._format = apprise.NotifyFormat.MARKDOWN if self.markdown else \
            apprise.NotifyFormat.TEXT

    async def publish(self, post: Post, raw_sha256: str) -> Published:
        title, body = chat_text(post, markdown=self.markdown, subject_in_body=not self.titled)
        ok = await asyncio.to_thread(self._apprise.notify, title=title, body=body,
                                     body_format=self._format)
        if not ok:
            raise PublishError(f"chat destination {self.name} refused or was unreachable")
        return Published(link=post.url)


def _renders_markdown(service: Any) -> bool:
    import apprise

    service_name = getattr(service, "service_name", "")
    if service_name in _PLAIN_SERVICES:
        return False
    if service_name in _MARKDOWN_SERVICES:
        return True
    declared = getattr(service, "notify_format", apprise.NotifyFormat.TEXT)
    formats = declared if isinstance(declared, tuple | list | set | frozenset) else (declared,)
    return apprise.NotifyFormat.MARKDOWN in {str(f) for f in formats} | set(formats)


class SpaceDestination:
    """The built-in shared space: a post row per channel and message, exactly once."""

    def __init__(self, name: str, channel: str, engine: Engine) -> None:
        self.name, self.channel, self.engine = name, channel, engine

    async def publish(self, post: Post, raw_sha256: str) -> Published:
        return await asyncio.to_thread(self._publish, post, raw_sha256)

    def _publish(self, post: Post, raw_sha256: str) -> Published:
        with self.engine.begin() as conn:
            return self.publish_in(conn, post, raw_sha256)

    def publish_in(self, conn: Connection, post: Post, raw_sha256: str) -> Published:
        """Ingest the message within the caller's transaction (the outbox finishes its job in
        the same one), so a post and its job's completion commit together. A reply to a
        thread of the channel becomes a comment on it; the link then points at the thread."""
        return self.publish_prepared(conn, self.prepare_in(conn, post, raw_sha256))

    def prepare_in(self, conn: Connection, post: Post, raw_sha256: str,
                   mail: Mail | None = None) -> Prepared:
        """The work that writes nothing (read the blob, parse, sanitise): a batch does it for
        every job before its first write. `mail`: the message already parsed (by the
        gateway in this process), instead of reading and parsing the blob."""
        if mail is not None:
            return prepare_mail(post, mail, raw_sha256)
        return prepare(post, load_raw(conn, post, raw_sha256), raw_sha256)

    def publish_prepared(self, conn: Connection, prepared: Prepared,
                         batch: Batch | None = None) -> Published:
        """`batch`: shared by the posts of one outbox batch (see space.ingest.Batch)."""
        post = prepared.post
        done = ingest_prepared(conn, self.channel, prepared, batch)
        base = post.url.rsplit("/m/", 1)[0]
        anchor = f"#comment-{done.comment_id}" if done.comment_id else ""
        return Published(link=f"{base}{post_path(done.channel, done.post_id)}{anchor}")


LocalDestination = SpaceDestination  # destinations that publish inside the outbox's transaction


def make_destination(name: str, kind: str, options: Mapping[str, Any],
                     engine: Engine) -> Destination:
    if kind == "space":
        return SpaceDestination(name, str(options.get("channel") or name), engine)
    if kind == "webhook":
        return WebhookDestination(name, str(options["url"]), str(options.get("secret", "")))
    if kind == "apprise":
        return AppriseDestination(name, str(options["url"]))
    raise ConfigError(f"destination {name}: unknown kind {kind!r}")
