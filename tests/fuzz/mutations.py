"""Hostile variants of real messages, and the parse → classify → decide path they go through.

One set of mutations serves two drivers: hypothesis in the test suite (tests/fuzz/
test_pipeline.py) and atheris for long runs on demand (scripts/fuzz_pipeline.py). Each
mutation takes the bytes and a `Chooser`, the only source of choices, so each driver can
steer (and hypothesis can shrink) every decision.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol, TypeVar

from sluice.classifier.model import Classifier
from sluice.core.decision import RoutingDecision
from sluice.core.mail import Envelope
from sluice.core.parse import normalize_line_endings, parse
from sluice.router.decide import decide
from sluice.router.rules import RuleSet
from sluice.router.rulesfile import parse_rules
from sluice.router.starter import starter_rules

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
#: Seeds per corpus folder: every folder's kinds of mail (Notes, Outlook, lists, MIME, HTML).
SEEDS_PER_FOLDER = 40

T = TypeVar("T")


class Chooser(Protocol):
    """Where every choice comes from (hypothesis' data, atheris' FuzzedDataProvider)."""

    def integer(self, low: int, high: int) -> int: ...

    def blob(self, max_size: int) -> bytes: ...


def pick(chooser: Chooser, options: Sequence[T]) -> T:
    return options[chooser.integer(0, len(options) - 1)]


# -- seeds --------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def seed_messages() -> tuple[bytes, ...]:
    """Real messages from the shared corpus, spread over its folders, MIME mail included."""
    assert CORPUS.is_dir(), f"the corpus is expected at {CORPUS}"
    seeds: list[bytes] = []
    for folder in ("enron_with_categories", "spamassassin_ham/easy_ham",
                   "spamassassin_ham/hard_ham", "enron_inboxes"):
        files = sorted(p for p in (CORPUS / folder).rglob("*")
                       if p.is_file() and p.suffix not in (".cats", ".txt.cats", ".csv"))
        files = [p for p in files if p.name != "categories.txt"]
        step = max(1, len(files) // SEEDS_PER_FOLDER)
        seeds += [p.read_bytes() for p in files[::step][:SEEDS_PER_FOLDER]]
    # MIME seeds on purpose: boundaries and parameters are what the MIME mutations damage.
    mime = [p.read_bytes() for p in sorted((CORPUS / "spamassassin_ham").rglob("*"))
            if p.is_file() and b"boundary=" in p.read_bytes()[:20_000]]
    seeds += mime[:: max(1, len(mime) // SEEDS_PER_FOLDER)][:SEEDS_PER_FOLDER]
    assert len(seeds) >= 100, "too few corpus messages found"
    return tuple(seeds)


# -- helpers ------------------------------------------------------------------------------

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_HEADER_LINE = re.compile(rb"^[!-9;-~]+:[^\n]*\n(?:[ \t][^\n]*\n)*", re.MULTILINE)
_BOUNDARY = re.compile(rb"""boundary\s*=\s*"?([^"\s;]+)"?""", re.IGNORECASE)


def split_message(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """(header block, separator, body); no separator: everything is header."""
    match = _HEADER_END.search(raw)
    if match is None:
        return raw, b"", b""
    return raw[: match.start()], match.group(0), raw[match.end():]


def _eol(raw: bytes) -> bytes:
    return b"\r\n" if b"\r\n" in raw[:2000] else b"\n"


def _at(raw: bytes, c: Chooser) -> int:
    return c.integer(0, len(raw))


def _add_header(raw: bytes, line: bytes, c: Chooser) -> bytes:
    """Insert one header line at a random header position."""
    head, sep, body = split_message(raw)
    eol = _eol(raw)
    lines = head.split(eol)
    lines.insert(c.integer(0, len(lines)), line)
    return eol.join(lines) + (sep or eol + eol) + body


# -- mutations ----------------------------------------------------------------------------

Mutation = Callable[[bytes, Chooser], bytes]


def flip_bytes(raw: bytes, c: Chooser) -> bytes:
    out = bytearray(raw)
    for _ in range(c.integer(1, 8)):
        if out:
            out[c.integer(0, len(out) - 1)] ^= 1 << c.integer(0, 7)
    return bytes(out)


def insert_bytes(raw: bytes, c: Chooser) -> bytes:
    at = _at(raw, c)
    return raw[:at] + c.blob(64) + raw[at:]


def delete_bytes(raw: bytes, c: Chooser) -> bytes:
    at = _at(raw, c)
    return raw[:at] + raw[at + c.integer(1, 4096):]


def truncate(raw: bytes, c: Chooser) -> bytes:
    return raw[: _at(raw, c)]


def damage_boundary(raw: bytes, c: Chooser) -> bytes:
    """Change, empty, drop or duplicate the MIME boundary, in the header or at a delimiter."""
    match = _BOUNDARY.search(raw)
    if match is None:
        return raw
    boundary = match.group(1)
    how = c.integer(0, 5)
    if how == 0:  # the header names another boundary than the body uses
        return raw[: match.start(1)] + boundary[:-1] + b"X" + raw[match.end(1):]
    if how == 1:  # empty boundary parameter
        return raw[: match.start()] + b'boundary=""' + raw[match.end():]
    if how == 2:  # no closing delimiter
        return raw.replace(b"--" + boundary + b"--", b"")
    if how == 3:  # every delimiter gone
        return raw.replace(b"--" + boundary, b"")
    if how == 4:  # one delimiter damaged
        at = raw.find(b"--" + boundary, match.end())
        return raw if at < 0 else raw[:at] + b"-" + raw[at + 2:]
    return raw[: match.start()] + b"boundary=" + c.blob(80) + raw[match.end():]


_CTYPE_VALUES = (
    b"multipart/mixed", b"multipart/alternative; boundary=", b'multipart/mixed; boundary="',
    b"multipart/related; boundary=\"\"", b"text/plain; charset=", b'text/plain; charset="',
    b"text/plain; charset*=''", b"text/plain; charset*=utf-8''%ff%fe", b"text/html; charset=%",
    b"message/rfc822", b"message/partial; id=x; number=1", b"multipart/digest; boundary=b",
    b"text/calendar; method=", b"application/octet-stream; name*0*=utf-8''%E2; name*1=x",
    b"text/plain; format=flowed; delsp=yes", b"/", b";;;;", b"text/", b"image/png",
    b"text/plain; charset=utf-8; charset=latin-1", b"multipart/mixed; boundary=b; boundary=c",
)
_CTE_VALUES = (b"base64", b"quoted-printable", b"x-uuencode", b"uuencode", b"7bit", b"8bit",
               b"binary", b"bogus", b"")


def damage_content_type(raw: bytes, c: Chooser) -> bytes:
    """A Content-Type or Content-Transfer-Encoding with broken or contradictory parameters."""
    if c.integer(0, 1):
        line = b"Content-Transfer-Encoding: " + pick(c, _CTE_VALUES)
    else:
        line = b"Content-Type: " + pick(c, _CTYPE_VALUES) + c.blob(16)
    if c.integer(0, 1):  # anywhere: in the top header block or inside a part's header
        at = _at(raw, c)
        eol = _eol(raw)
        return raw[:at] + eol + line + eol + raw[at:]
    return _add_header(raw, line, c)


_CHARSETS = (b"x-unknown", b"utf-7", b"utf-16", b"utf-32", b"idna", b"rot13", b"base64",
             b"hex", b"zlib", b"punycode", b"unicode_escape", b"raw_unicode_escape",
             b"undefined", b"mbcs", b"cp65001", b"utf-8", b"us-ascii", b"iso-2022-jp",
             b"gb18030", b"big5", b"shift_jis", b"koi8-r", b"uu", b"bz2", b"quopri",
             b"\xff\xfe", b"utf-8\x00", b"", b"utf-8'en'", b"../../etc", b"a" * 300)


def lying_charset(raw: bytes, c: Chooser) -> bytes:
    """Declare a charset that does not exist, is no text codec, or is not what the bytes are."""
    charset = pick(c, _CHARSETS)
    replaced = re.sub(rb"charset\s*=\s*\"?[^\";\s]*\"?", b'charset="' + charset + b'"', raw,
                      count=c.integer(0, 3), flags=re.IGNORECASE)
    if replaced != raw:
        return replaced
    return _add_header(raw, b"Content-Type: text/plain; charset=" + charset, c)


_ENCODED_WORDS = (
    b"=?utf-8?b?####?=", b"=?utf-8?q?=ZZ=0?=", b"=?utf-8?q?", b"=?undefined?b?AAAA?=",
    b"=?x-unknown?q?abc?=", b"=??q?abc?=", b"=?utf-8?x?abc?=", b"=?utf-8*en?q?a?=",
    b"=?utf-8?b?" + b"QUJD" * 2000 + b"?=", b"=?unicode_escape?q?=5CN=7B?=",
    b"=?utf-16?b?2D3d?=", b"=?rot13?q?nop?=", b"=?utf-8?B?/w==?=", b"=?iso-8859-1?q?\xff?=",
    b"=?utf-8?q?a?==?utf-8?q?b?=", b"=?", b"?=", b"=?=?=?=?",
)
_ADDRESS_HEADERS = (b"Subject", b"From", b"To", b"Cc", b"Reply-To", b"Bcc", b"List-Id",
                    b"Message-ID", b"In-Reply-To", b"References", b"Date", b"Sender")


def encoded_word_garbage(raw: bytes, c: Chooser) -> bytes:
    words = b" ".join(pick(c, _ENCODED_WORDS) for _ in range(c.integer(1, 6)))
    return _add_header(raw, pick(c, _ADDRESS_HEADERS) + b": " + words, c)


def huge_header(raw: bytes, c: Chooser) -> bytes:
    """A subject, address list or unbroken header line of up to a megabyte."""
    size = pick(c, (1_000, 70_000, 300_000, 1_000_000))
    how = c.integer(0, 4)
    if how == 0:
        value = b"Re: " * (size // 4)
    elif how == 1:
        value = b", ".join(b"user%d@example.com" % i for i in range(size // 20))
    elif how == 2:
        value = b"x" * size
    elif how == 3:
        value = b"[tag] " * (size // 6)
    else:
        value = (b"word " * 15 + b"\r\n ") * (size // 80)  # folded, many lines
    return _add_header(raw, pick(c, _ADDRESS_HEADERS) + b": " + value, c)


def many_headers(raw: bytes, c: Chooser) -> bytes:
    count = pick(c, (100, 5_000, 50_000))
    block = b"".join(b"X-H%d: v\r\n" % i for i in range(count))
    head, sep, body = split_message(raw)
    return head + b"\r\n" + block.rstrip() + (sep or b"\r\n\r\n") + body


def nest_multipart(raw: bytes, c: Chooser) -> bytes:
    """Wrap the message in many levels of multipart (and message/rfc822) containers."""
    depth = pick(c, (5, 60, 600, 3_000))
    closed = c.integer(0, 1)
    kind = pick(c, (b"multipart/mixed", b"message/rfc822"))
    opening, closing = [], []
    for level in range(depth):
        if kind == b"message/rfc822":
            opening.append(b"Content-Type: message/rfc822\r\n\r\n")
        else:
            b = b"b%d" % level
            opening.append(b'Content-Type: multipart/mixed; boundary="' + b + b'"\r\n\r\n--'
                           + b + b"\r\n")
            closing.append(b"\r\n--" + b + b"--\r\n" if closed else b"")
    return (b"From: nest@example.com\r\nMIME-Version: 1.0\r\n" + b"".join(opening) + raw
            + b"".join(reversed(closing)))


def many_parts(raw: bytes, c: Chooser) -> bytes:
    count = pick(c, (50, 2_000, 20_000))
    part = b"--p\r\nContent-Type: text/plain\r\n\r\nx\r\n"
    return (b"Content-Type: multipart/mixed; boundary=p\r\n\r\n" + part * count + b"--p--\r\n"
            + raw)


def nuls(raw: bytes, c: Chooser) -> bytes:
    out = raw
    for _ in range(c.integer(1, 20)):
        at = _at(out, c)
        out = out[:at] + b"\x00" * c.integer(1, 3) + out[at:]
    return out


def non_utf8(raw: bytes, c: Chooser) -> bytes:
    """High bytes and broken UTF-8 sequences, in the header block or the body."""
    chunk = pick(c, (b"\xff\xfe", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\x80" * 10,
                     b"\xf4\x90\x80\x80", bytes(range(128, 256)), b"\xc0\xaf"))
    if c.integer(0, 1):
        head, sep, body = split_message(raw)
        at = c.integer(0, len(head))
        return head[:at] + chunk + head[at:] + sep + body
    at = _at(raw, c)
    return raw[:at] + chunk + raw[at:]


def drop_separator(raw: bytes, c: Chooser) -> bytes:
    head, sep, body = split_message(raw)
    return head + _eol(raw) + body if sep else raw


def duplicate_headers(raw: bytes, c: Chooser) -> bytes:
    lines = _HEADER_LINE.findall(split_message(raw)[0] + b"\n")
    if not lines:
        return raw
    extra = b"".join(pick(c, lines) for _ in range(c.integer(1, 10)))
    head, sep, body = split_message(raw)
    return head + _eol(raw) + extra.rstrip(b"\r\n") + (sep or b"\r\n\r\n") + body


def hostile_body(raw: bytes, c: Chooser) -> bytes:
    """Bodies that make text processing slow: blank lines, long lines, unclosed markup."""
    size = pick(c, (2_000, 60_000, 400_000))
    filler = pick(c, (b"\n", b" \n", b" ", b"<a ", b"<!--", b"&#", b"> ", b"-- \n", b"Re: ",
                      b"to:", b"On x wrote:\n", b"\t", b"=\r\n", b"=", b"<![CDATA[", b"a\r"))
    body = filler * (size // len(filler))
    head = b"From: Ann <ann@example.com>\r\nTo: bob@example.com\r\nSubject: hostile\r\n"
    if c.integer(0, 1):
        head += b"Content-Type: text/html\r\n"
    if c.integer(0, 1):
        head += b"Content-Transfer-Encoding: quoted-printable\r\n"
    return head + b"\r\n" + body + raw[: c.integer(0, 2000)]


MUTATIONS: tuple[Mutation, ...] = (
    flip_bytes, insert_bytes, delete_bytes, truncate, damage_boundary, damage_content_type,
    lying_charset, encoded_word_garbage, huge_header, many_headers, nest_multipart, many_parts,
    nuls, non_utf8, drop_separator, duplicate_headers, hostile_body,
)


def hostile_message(c: Chooser) -> bytes:
    """A real message with one to four mutations; line ends as received or as the gateway
    normalises them."""
    raw = pick(c, seed_messages())
    for _ in range(c.integer(1, 4)):
        raw = pick(c, MUTATIONS)(raw, c)
    return normalize_line_endings(raw) if c.integer(0, 1) else raw


# -- the path under test ------------------------------------------------------------------

#: Internal domains of the realistic rule set (the starter policy, enforced, plus own rules).
DOMAINS = ("example.com", "enron.com")
OWN_RULES = """\
users:
  ann@example.com:
    - {match: {subject: "(?i)weekly|report", category: broadcast}, action: digest, to: broadcasts}
    - {match: {sender_domain: enron.com, has_attachment: true}, action: deliver}
  bob@enron.com:
    - {match: {category: direct, min_confidence: 0.9}, action: deliver}
    - {match: {min_recipients: 5, sender: "list@example.com"}, action: deliver}
"""


@lru_cache(maxsize=1)
def ruleset() -> RuleSet:
    text = starter_rules(DOMAINS).replace("mode: audit", "mode: enforce")
    return parse_rules(text.replace("users: {}", OWN_RULES), "fuzz-rules")


@lru_cache(maxsize=1)
def classifier() -> Classifier:
    return Classifier.load_default()


ENVELOPES = (
    None,  # parse takes the envelope from the headers, as the analyzer does
    Envelope("sender@example.org", ("ann@example.com", "bob@enron.com", "x@elsewhere.net")),
    Envelope("", ("ann@example.com",)),
)


def run_pipeline(raw: bytes, envelope: Envelope | None) -> RoutingDecision:
    """parse → classify → decide; any exception escapes to the driver as a finding."""
    mail = parse(raw, envelope)
    verdict = classifier().classify(mail)
    decision = decide(mail, verdict, ruleset())
    assert len(decision.actions) == len(mail.envelope.rcpt_tos)
    return decision
