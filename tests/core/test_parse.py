"""parse: facts come out right, broken input never raises, raw bytes are kept."""

from __future__ import annotations

from email import message_from_bytes
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.core.parse import (
    _BOUNDARY_PARAM,
    _HEADER_END,
    MAX_BOUNDARIES,
    NestingTooDeepDefect,
    _message,
    _plain_header_block,
    normalize_line_endings,
    normalize_subject,
    parse,
    parse_addresses,
)
from tests.servers import iter_corpus_messages

MIXED = (
    b"From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <JM@Example.com>\r\n"
    b"To: a@example.com, B <b@example.com>\r\nCc: c@example.com\r\n"
    b"Subject: RE: AW: [sales] Fwd: Price list\r\nMessage-ID: <m1@example.com>\r\n"
    b"In-Reply-To: <p@example.com>\r\nReferences: <r@example.com> <p@example.com>\r\n"
    b"List-Id: Sales <sales.example.com>\r\nPrecedence: bulk\r\n"
    b"Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
    b"--outer\r\nContent-Type: multipart/related; boundary=inner\r\n\r\n"
    b"--inner\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<p>Hello <b>team</b></p><script>alert(1)</script><img src=cid:logo>\r\n"
    b"--inner\r\nContent-Type: image/png\r\nContent-ID: <logo>\r\n"
    b"Content-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
    b"--inner--\r\n"
    b"--outer\r\nContent-Type: application/pdf; name=prices.pdf\r\n"
    b"Content-Disposition: attachment; filename=prices.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n"
    b"--outer\r\nContent-Type: text/calendar; method=REQUEST; charset=utf-8\r\n\r\n"
    b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nSUMMARY:Review\r\n"
    b"END:VEVENT\r\nEND:VCALENDAR\r\n"
    b"--outer--\r\n"
)


def test_headers_thread_keys_and_parts() -> None:
    mail = parse(MIXED)
    assert mail.raw is MIXED
    assert (mail.from_name, mail.from_addr) == ("Jürgen Müller", "jm@example.com")
    assert mail.to == ("a@example.com", "b@example.com")
    assert mail.cc == ("c@example.com",)
    assert mail.thread.normalized_subject == "price list"
    assert mail.thread.in_reply_to == "<p@example.com>"
    assert mail.thread.references == ("<r@example.com>", "<p@example.com>")
    assert mail.thread.reply_depth == 2
    assert (mail.list_id, mail.precedence, mail.auto_submitted) == (
        "Sales <sales.example.com>", "bulk", "auto-generated")
    assert [(a.filename, a.content_type, a.size) for a in mail.attachments] == [
        ("prices.pdf", "application/pdf", 9)]
    assert mail.inline_images == 1  # the logo is not an attachment
    assert mail.text == "Hello team"  # HTML turned into text, script dropped
    assert [c.method for c in mail.calendar] == ["REQUEST"]


@pytest.mark.parametrize(("subject", "expected"), [
    ("Re: Re: hello", "hello"), ("AW: WG: Angebot", "angebot"), ("[list] Re:  Status ", "status"),
    ("Fwd: RE[2]: numbers", "numbers"), ("Plain", "plain"), ("", ""),
])
def test_normalize_subject(subject: str, expected: str) -> None:
    assert normalize_subject(subject) == expected


def test_line_endings() -> None:
    assert normalize_line_endings(b"a\r\nb\nc\rd\r\n") == b"a\r\nb\r\nc\r\nd\r\n"
    canonical = b"a\r\nb\r\n"
    assert normalize_line_endings(canonical) is canonical


def test_real_corpus_messages_parse() -> None:
    for path in iter_corpus_messages(300):
        mail = parse(path.read_bytes())
        assert mail.raw
        assert isinstance(mail.text, str)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4000))
def test_parse_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    parse(data)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=len(MIXED) - 1), st.binary(min_size=1, max_size=20))
def test_parse_never_raises_on_mutated_mime(position: int, junk: bytes) -> None:
    parse(MIXED[:position] + junk + MIXED[position:])


def test_folded_headers_are_unfolded() -> None:
    mail = parse(b"Subject: a long subject that was\r\n folded once\r\nFrom: x@example.com\r\n\r\n")
    assert mail.subject == "a long subject that was folded once"


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_header_fast_path_agrees_with_full_decoding(value: str) -> None:
    """Values without encoded-words skip RFC 2047 decoding; the result must be the same."""
    from email.header import decode_header, make_header

    from sluice.core.parse import _FOLD, decode_header_value

    value = value.replace("=?", "")
    try:
        slow = str(make_header(decode_header(_FOLD.sub("", value)))).strip()
    except Exception:
        slow = " ".join(_FOLD.sub("", value).split())
    fast = decode_header_value(value)
    if "\r" not in value and "\n" not in value:
        assert fast == slow


def _same(raw: bytes) -> None:
    from email import message_from_bytes
    from email.policy import compat32

    import sluice.core.parse as parse_module

    fast = parse(raw)
    original = parse_module._message
    parse_module._message = lambda data: message_from_bytes(data, policy=compat32)
    try:
        full = parse(raw)
    finally:
        parse_module._message = original
    assert fast == full


def test_single_part_short_cut_gives_what_the_full_parser_gives() -> None:
    for path in iter_corpus_messages(400):
        _same(path.read_bytes())
    _same(MIXED)
    _same(b"Subject: x\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n")
    _same(b"Subject: q\nContent-Type: text/plain; charset=iso-8859-1\n"
          b"Content-Transfer-Encoding: quoted-printable\n\ncaf=E9\n\n\nend")
    _same(b"Subject: html\r\nContent-Type: text/html\r\n\r\n<p>Hi <b>there</b></p>\r\n")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_short_cut_agrees_on_arbitrary_bytes(data: bytes) -> None:
    _same(b"Subject: s\r\nFrom: a@example.com\r\n\r\n" + data)
    _same(data)


_ATOM = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_+",
                min_size=1, max_size=12)
_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP éü.'-", max_size=20)
_MEMBER = st.one_of(
    st.builds(lambda lp, d: f"{lp}@{d}", _ATOM, _ATOM),
    st.builds(lambda lp, d: f"<{lp}@{d}>", _ATOM, _ATOM),
    st.builds(lambda n, lp, d: f"{n} <{lp}@{d}>", _NAME, _ATOM, _ATOM),
    # Forms the short cut must hand to the full grammar.
    st.builds(lambda n, lp, d: f'"{n}, x" <{lp}@{d}>', _NAME, _ATOM, _ATOM),
    st.builds(lambda lp, d, c: f"{lp}@{d} ({c})", _ATOM, _ATOM, _NAME),
    st.builds(lambda n, lp, d: f"team: {n} <{lp}@{d}>;", _NAME, _ATOM, _ATOM),
    st.just(""),
)


@given(st.lists(st.lists(_MEMBER, min_size=1, max_size=4).map(", ".join), min_size=1,
                max_size=3))
@settings(max_examples=400, deadline=None)
def test_address_lists_are_read_as_the_stdlib_reads_them(values: list[str]) -> None:
    assert parse_addresses(values) == getaddresses(values)


def _feed_parser_head(raw: bytes) -> Message:
    end = _HEADER_END.search(raw)
    assert end is not None
    return message_from_bytes(raw[: end.start()] + b"\n", policy=compat32)


def _same_head(raw: bytes) -> None:
    end = _HEADER_END.search(raw)
    assert end is not None
    fast = _plain_header_block(raw[: end.start()].decode("ascii", "surrogateescape"))
    if fast is None:  # handed to the feed parser: nothing to compare
        return
    slow = _feed_parser_head(raw)
    assert fast.items() == slow.items()
    assert slow.defects == [] and fast.get_unixfrom() == slow.get_unixfrom()


_FIELD = st.text(alphabet="ABCXYZabcxyz-_:;.!~", min_size=1, max_size=12)
_VALUE = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=30)
_END = st.sampled_from(["\r\n", "\n", "\r"])
_LINE = st.one_of(
    st.builds(lambda f, v, e: f"{f}: {v}{e}", _FIELD, _VALUE, _END),
    st.builds(lambda f, v, e: f"{f}:{v}{e}", _FIELD, _VALUE, _END),
    st.builds(lambda v, e: f" {v}{e}", _VALUE, _END),
    st.builds(lambda v, e: f"\t{v}{e}", _VALUE, _END),
    st.builds(lambda v, e: f"From {v}{e}", _VALUE, _END),
    st.builds(lambda v, e: f":{v}{e}", _VALUE, _END),
    st.builds(lambda v, e: f"{v}{e}", _VALUE, _END),
)


@given(st.lists(_LINE, min_size=1, max_size=8))
@settings(max_examples=500, deadline=None)
def test_header_short_cut_reads_headers_as_the_feed_parser(lines: list[str]) -> None:
    head = "".join(lines).rstrip("\r\n").encode("latin-1")
    if b"\n\n" in head or b"\r\n\r\n" in head or b"\r\r" in head:
        return  # a blank line ends the header block: not one block any more
    _same_head(head + b"\r\n\r\nbody\r\n")


def test_header_short_cut_on_real_mail() -> None:
    for path in iter_corpus_messages(400):
        raw = normalize_line_endings(path.read_bytes())
        if _HEADER_END.search(raw) and raw[:1] not in (b" ", b"\t"):
            _same_head(raw)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"boundary=", b"BOUNDARY =", b"Boundary", b"bOuNdArY\t=",
                                 b"boundar", b"y=", b"=", b"x", b"\r\n", b": "]),
                max_size=260))
def test_the_boundary_count_is_decided_as_the_pattern_decides_it(pieces: list[bytes]) -> None:
    """`_message` counts the word before running the case-insensitive pattern: the body is
    kept opaque exactly when the pattern alone finds more than MAX_BOUNDARIES."""
    raw = b"Content-Type: text/plain\r\n\r\n" + b"".join(pieces)
    opaque = any(isinstance(d, NestingTooDeepDefect) for d in _message(raw).defects)
    assert opaque == (len(_BOUNDARY_PARAM.findall(raw)) > MAX_BOUNDARIES)
