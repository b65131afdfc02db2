"""parse: raw RFC 822 bytes -> Mail. Pure, lenient, and never raises on bad input.

The stdlib parser (compat32 policy) is used on purpose: it is the fastest lenient parser
available and keeps going on broken MIME (see docs/performance.md for the measurement
against mail-parser). Whatever cannot be understood is recorded in `Mail.defects`.
"""

from __future__ import annotations

import hashlib
import re
from email import message_from_bytes
from email.errors import MessageDefect
from email.header import decode_header, make_header
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from sluice.core.htmltext import html_to_text
from sluice.core.mail import Attachment, CalendarPart, Envelope, Mail, ThreadKeys

#: Text beyond this many characters adds nothing to classification; it is cut off.
MAX_TEXT_CHARS = 100_000
#: Parts nested deeper than this are not walked (a MIME bomb defence).
MAX_PARTS = 500

#: One reply/forward prefix or list tag; matched at a position (no `^`), so that a subject
#: of thousands of prefixes is walked once instead of being copied once per prefix.
_REPLY_PREFIX = re.compile(
    r"\s*(?:(?:re|aw|sv|vs|antw|fw|fwd|wg|tr|rv)(?:\[\d+\])?\s*:\s*|\[[^\]]{1,40}\]\s*)",
    re.IGNORECASE,
)
_RE_PREFIX = re.compile(r"\s*(?:re|aw|sv|antw)(?:\[\d+\])?\s*:", re.IGNORECASE)
_MSGID = re.compile(r"<[^<>\s]+>")
_BARE_LINE_END = re.compile(rb"\r\n|\r|\n")
_FOLD = re.compile(r"\r?\n(?=[ \t])")


def normalize_line_endings(raw: bytes) -> bytes:
    """Turn stray bare CR or LF into CRLF, as Postfix does; CRLF pairs stay as they are."""
    if b"\r" not in raw and b"\n" not in raw:
        return raw
    # Fast path: already canonical when every CR is followed by LF and every LF follows CR.
    if raw.count(b"\r\n") == raw.count(b"\r") == raw.count(b"\n"):
        return raw
    return _BARE_LINE_END.sub(b"\r\n", raw)


def decode_header_value(value: str | None) -> str:
    """RFC 2047 decoding that tolerates broken encodings."""
    if not value:
        return ""
    value = str(value)
    if "=?" not in value:  # nothing encoded: unfold (RFC 5322 2.2.3) and trim, no decoding
        return value.replace("\r", "").replace("\n", "").strip()
    value = _FOLD.sub("", value)
    try:
        return str(make_header(decode_header(value))).strip()
    except Exception:  # broken encoded-words: keep the raw text
        return " ".join(str(value).split())


def _prefixes_end(subject: str) -> tuple[int, int]:
    """Where the leading prefixes and list tags end, and how many of them were replies."""
    position = replies = 0
    while (prefix := _REPLY_PREFIX.match(subject, position)) is not None:
        if _RE_PREFIX.match(subject, position):
            replies += 1
        position = prefix.end()
    return position, replies


def normalize_subject(subject: str) -> str:
    """Subject without reply/forward prefixes and list tags, lower-cased, spaces collapsed."""
    return " ".join(subject[_prefixes_end(subject)[0]:].lower().split())


def _count_re(subject: str) -> int:
    return _prefixes_end(subject)[1]


#: One plain list member: `addr@domain`, `<addr@domain>` or `Display Name <addr@domain>`.
_PLAIN_MEMBER = re.compile(
    r"\s*(?:([^<>@,]*?)\s*<([^<>@\s,]+@[^<>@\s,]+)>|([^<>@\s,]+@[^<>@\s,]+))\s*")
#: Anything that needs RFC 5322's full grammar: quotes, comments, escapes, groups, routes.
_NEEDS_GRAMMAR = re.compile(r'["()\\:;\[\]]')


def parse_addresses(values: list[str]) -> list[tuple[str, str]]:
    """(display name, address) pairs, as `email.utils.getaddresses` gives them.

    Most address headers are plain lists; those are split directly (the stdlib's address
    parser costs more than the rest of the header parsing together). Anything with quotes,
    comments, groups or an empty member goes to `getaddresses`.
    """
    pairs: list[tuple[str, str]] = []
    for value in values:
        if _NEEDS_GRAMMAR.search(value):
            return _getaddresses(values)
        for member in value.split(","):
            match = _PLAIN_MEMBER.fullmatch(member)
            if match is None:
                return _getaddresses(values)
            if match.group(3) is not None:
                pairs.append(("", match.group(3)))
            else:
                pairs.append((" ".join(match.group(1).split()), match.group(2)))
    return pairs


def _getaddresses(values: list[str]) -> list[tuple[str, str]]:
    try:
        return getaddresses(values)
    except RecursionError:  # comments nested past Python's stack: the stdlib recurses per "("
        return []


def _addresses(values: list[str]) -> tuple[str, ...]:
    decoded = [decode_header_value(str(v)) for v in values]
    return tuple(addr.lower() for _, addr in parse_addresses(decoded) if "@" in addr)


def _decoded_payload(part: Message) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        return b""
    return payload if isinstance(payload, bytes) else b""


def _part_text(part: Message, payload: bytes) -> str:
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # unknown charset name
        return payload.decode("utf-8", errors="replace")


def _is_inline_image(part: Message, disposition: str) -> bool:
    return part.get_content_maintype() == "image" and (
        disposition == "inline" or (disposition != "attachment" and bool(part.get("Content-ID")))
    )


class _Walk:
    """Accumulates what a MIME walk finds."""

    def __init__(self) -> None:
        self.plain: list[str] = []
        self.html: list[str] = []
        self.attachments: list[Attachment] = []
        self.calendar: list[CalendarPart] = []
        self.inline_images = 0

    def visit(self, part: Message) -> None:
        if part.is_multipart():
            return
        ctype = part.get_content_type()
        disposition = (part.get_content_disposition() or "").lower()
        filename = decode_header_value(part.get_filename() or "")
        if ctype == "text/calendar":
            payload = _decoded_payload(part)
            text = _part_text(part, payload)
            method = str(part.get_param("method") or "") or _ical_method(text)
            self.calendar.append(CalendarPart(method=method.upper(), text=text))
            if filename or disposition == "attachment":
                self._attach(filename or "invite.ics", ctype, payload)
            return
        if _is_inline_image(part, disposition):
            self.inline_images += 1
            return
        if disposition == "attachment" or (filename and ctype not in ("text/plain", "text/html")):
            self._attach(filename or "unnamed", ctype, _decoded_payload(part))
            return
        if ctype == "text/plain":
            self.plain.append(_part_text(part, _decoded_payload(part)))
        elif ctype == "text/html":
            self.html.append(_part_text(part, _decoded_payload(part)))
        elif ctype == "message/rfc822" or part.get_content_maintype() not in ("text", "multipart"):
            self._attach(filename or "unnamed", ctype, _decoded_payload(part))

    def _attach(self, filename: str, ctype: str, payload: bytes) -> None:
        digest = hashlib.sha256(payload).hexdigest()
        self.attachments.append(Attachment(filename, ctype, len(payload), digest))


def _ical_method(text: str) -> str:
    match = re.search(r"^METHOD:(\S+)", text, re.MULTILINE)
    return match.group(1) if match else ""


def _walk(msg: Message) -> _Walk:
    found = _Walk()
    try:
        for count, part in enumerate(msg.walk()):
            if count >= MAX_PARTS:
                break
            try:
                found.visit(part)
            except Exception:  # one broken part must not hide the others
                continue
    except RecursionError:  # walk() recurses per level: stop at what Python's stack allows
        pass
    return found


_HEADER_END = re.compile(rb"\r?\n\r?\n")


#: A header line as the feed parser sees one (a field, or a continuation).
_HEADER_LINE = re.compile(r"[\041-\071\073-\176]+:|[ \t]")
_LINE_SPLIT = re.compile(r"(?<=\r\n)|(?<=\r)(?!\n)|(?<=\n)")


def _plain_header_block(text: str) -> Message | None:
    """The header block read as the feed parser reads a well-formed one, without its
    line-by-line machinery (half of the parse time of a small message); None for anything
    unusual (a continuation first, `From ` lines, a line that is no header), which the
    feed parser then handles with its defects."""
    lines = [line for line in _LINE_SPLIT.split(text) if line]
    if not lines or lines[0][:1] in (" ", "\t"):
        return None
    msg = Message(policy=compat32)
    current: list[str] = []
    for line in lines:
        if _HEADER_LINE.match(line) is None:
            return None
        if line[0] in " \t":
            current.append(line)
            continue
        if current:
            msg.set_raw(*compat32.header_source_parse(current))
        current = [line]
    msg.set_raw(*compat32.header_source_parse(current))
    return msg


class NestingTooDeepDefect(MessageDefect):
    """More multipart containers than MAX_BOUNDARIES, or parts nested deeper than Python's
    stack lets the stdlib parser go (it recurses once per level): the body was kept as one
    opaque payload."""


#: More `boundary=` parameters than this and the body is not parsed: the stdlib parser checks
#: every body line against every open boundary, so its time grows with lines x nesting (a
#: 400 KB body under 600 levels took 24 s).
MAX_BOUNDARIES = 64
_BOUNDARY_PARAM = re.compile(rb"boundary\s*=", re.IGNORECASE)


def _message(raw: bytes) -> Message:
    # Every `boundary=` match holds the word, so at most MAX_BOUNDARIES occurrences of it
    # decide the same without the pattern: a case-insensitive regular expression scans the
    # whole message at about 5 ns a byte (a fifth of the parse of a 4 KB message).
    if (raw.lower().count(b"boundary") > MAX_BOUNDARIES
            and len(_BOUNDARY_PARAM.findall(raw)) > MAX_BOUNDARIES):
        return _opaque(raw)
    try:
        return _message_tree(raw)
    except RecursionError:
        return _opaque(raw)


def _opaque(raw: bytes) -> Message:
    """The header block parsed, the body kept as one payload, the reason as a defect."""
    end = _HEADER_END.search(raw)
    head, body = (raw, b"") if end is None else (raw[: end.start()], raw[end.end():])
    msg = message_from_bytes(head + b"\n", policy=compat32)
    msg.set_payload(body.decode("ascii", "surrogateescape"))
    msg.defects.append(NestingTooDeepDefect())
    return msg


def _message_tree(raw: bytes) -> Message:
    """The stdlib's message tree, with a short cut for single-part mail.

    The feed parser walks every body line even when there is only one part. For a message
    that is not multipart, the header block alone is parsed and the body set as its payload,
    exactly as the feed parser would store it (ASCII with surrogate escapes).
    """
    end = _HEADER_END.search(raw)
    if end is None or raw[:1] in (b" ", b"\t"):
        return message_from_bytes(raw, policy=compat32)
    head = (_plain_header_block(raw[: end.start()].decode("ascii", "surrogateescape"))
            or message_from_bytes(raw[: end.start()] + b"\n", policy=compat32))
    if head.get_content_maintype() in ("multipart", "message") or head.defects:
        return message_from_bytes(raw, policy=compat32)
    head.set_payload(raw[end.end():].decode("ascii", "surrogateescape"))
    return head


def parse(raw: bytes, envelope: Envelope | None = None) -> Mail:
    """Parse a message; lenient with broken input, exact with `raw`."""
    msg = _message(raw)
    found = _walk(msg)
    # Each header is fetched once: Message.get scans (and lower-cases) the whole list per call.
    items = msg.items()
    fields: dict[str, list[Any]] = {}
    for key, value in items:
        fields.setdefault(key.lower(), []).append(value)

    def first(name: str) -> Any:
        values = fields.get(name)
        return values[0] if values else None

    subject = decode_header_value(first("subject"))
    from_pairs = parse_addresses([decode_header_value(first("from"))])
    from_name, from_addr = from_pairs[0] if from_pairs else ("", "")
    message_id_match = _MSGID.search(str(first("message-id") or ""))
    references = tuple(_MSGID.findall(str(first("references") or "")))
    in_reply_to_match = _MSGID.search(str(first("in-reply-to") or ""))
    in_reply_to = in_reply_to_match.group(0) if in_reply_to_match else ""
    depth = max(len(references), 1 if in_reply_to else 0, _count_re(subject))
    try:
        date_value = first("date")
        date = parsedate_to_datetime(str(date_value)) if date_value else None
    except (TypeError, ValueError, IndexError):
        date = None
    plain = "\n".join(found.plain)
    html = "\n".join(found.html)
    text = plain if plain.strip() else html_to_text(html)
    to = _addresses(fields.get("to", []))
    cc = _addresses(fields.get("cc", []))
    return Mail(
        envelope=envelope or Envelope(mail_from=from_addr.lower(), rcpt_tos=to + cc),
        raw=raw,
        message_id=message_id_match.group(0) if message_id_match else "",
        subject=subject,
        from_addr=from_addr.lower(),
        from_name=from_name,
        to=to,
        cc=cc,
        reply_to=_addresses(fields.get("reply-to", [])),
        date=date,
        thread=ThreadKeys(
            message_id=message_id_match.group(0) if message_id_match else "",
            in_reply_to=in_reply_to,
            references=references,
            normalized_subject=normalize_subject(subject),
            reply_depth=depth,
        ),
        list_id=decode_header_value(first("list-id")),
        precedence=str(first("precedence") or "").strip().lower(),
        auto_submitted=str(first("auto-submitted") or "").strip().lower(),
        headers=tuple((k, decode_header_value(str(v))) for k, v in items),
        text=text[:MAX_TEXT_CHARS],
        html=html[:MAX_TEXT_CHARS],
        attachments=tuple(found.attachments),
        inline_images=found.inline_images,
        calendar=tuple(found.calendar),
        defects=tuple(type(d).__name__ for d in msg.defects),
    )
