"""build_post: a diverted message as a Post for one destination (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from sluice.core.mail import Mail
from sluice.core.post import Post, post_from_json, post_to_json
from sluice.core.verdict import Verdict

__all__ = ["EXCERPT_CHARS", "build_post", "excerpt", "post_from_json", "post_key", "post_to_json"]

#: A post shows this much of the text; the whole message is one click away.
EXCERPT_CHARS = 1200


def post_key(fingerprint: str, destination: str) -> str:
    return f"{fingerprint}:{destination}"


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The readable start of the text: quoted replies dropped, whitespace tidied.

    A long text is first tidied from a prefix of whole lines only (tidying all of it was a
    twentieth of the gateway's time per diverted message): once that prefix, cut after a
    line, tidies to more than `limit` characters, it is the start of the whole text's tidy
    form (tidying only drops lines, trims ends and shortens blank runs), so the cut is the
    same."""
    if len(text) > _PREFIX_FACTOR * limit:
        lines = text[: _PREFIX_FACTOR * limit].splitlines()[:-1]  # the last may be cut
        tidy = _tidy(_kept(lines))
        if len(tidy) > limit:
            return tidy[: limit - 1].rstrip() + "…"
    tidy = _tidy(_kept(text.splitlines()))
    return tidy if len(tidy) <= limit else tidy[: limit - 1].rstrip() + "…"


#: `excerpt` first tidies this many times `limit` characters of a longer text.
_PREFIX_FACTOR = 3


def _kept(lines: list[str]) -> list[str]:
    return [line.rstrip() for line in lines if not line.lstrip().startswith(">")]


def _tidy(lines: list[str]) -> str:
    tidy = "\n".join(lines).strip()
    while "\n\n\n" in tidy:
        tidy = tidy.replace("\n\n\n", "\n\n")
    return tidy


def build_post(mail: Mail, verdict: Verdict | None, *, destination: str, fingerprint: str,
               recipients: tuple[str, ...], base_url: str,
               received_at: datetime | None = None) -> Post:
    return Post(
        key=post_key(fingerprint, destination),
        destination=destination,
        fingerprint=fingerprint,
        message_id=mail.message_id,
        subject=mail.subject or "(no subject)",
        sender=mail.from_addr or mail.envelope.mail_from,
        sender_name=mail.from_name,
        category=verdict.category if verdict else "",
        confidence=verdict.confidence if verdict else 0.0,
        received_at=received_at or datetime.now(UTC),
        excerpt=excerpt(mail.text),
        url=f"{base_url.rstrip('/')}/m/{fingerprint}",
        attachments=mail.attachments,
        recipients=recipients,
        thread_subject=mail.thread.normalized_subject,
        in_reply_to=mail.thread.in_reply_to,
    )
