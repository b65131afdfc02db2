"""Odd input always gets a verdict, never an exception."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.classifier.history import SenderHistory
from sluice.classifier.model import Classifier
from sluice.core.parse import parse
from sluice.core.verdict import CATEGORIES

_CHARSETS = st.sampled_from(["utf-8", "x-unknown-charset", "iso-8859-1", "", "utf-7", "bogus"])
_HEADER_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)


def _message(subject: str, body: bytes, charset: str, boundary_broken: bool) -> bytes:
    head = f"From: a@x.example\r\nTo: b@y.example\r\nSubject: {subject}\r\n"
    if boundary_broken:
        head += "Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Type: text/plain"
    else:
        head += "Content-Type: text/plain"
    head += f"; charset={charset}\r\n\r\n" if charset else "\r\n\r\n"
    return head.encode("utf-8", "surrogateescape") + body


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=_HEADER_TEXT, body=st.binary(max_size=2000), charset=_CHARSETS,
       broken=st.booleans())
def test_odd_messages_get_a_verdict(
    default_classifier: Classifier, subject: str, body: bytes, charset: str, broken: bool
) -> None:
    verdict = default_classifier.classify(parse(_message(subject, body, charset, broken)))
    assert verdict.category in CATEGORIES


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=3000))
def test_any_bytes_get_a_verdict(default_classifier: Classifier, raw: bytes) -> None:
    assert default_classifier.classify(parse(raw)).category in CATEGORIES


#: One history for every example below: odd messages are counted into it one after another.
_HISTORY = SenderHistory(max_senders=50, max_pairs=200, max_copies=50)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=_HEADER_TEXT, body=st.binary(max_size=500), charset=_CHARSETS,
       broken=st.booleans(), raw=st.binary(max_size=1000))
def test_odd_messages_get_a_verdict_with_a_sender_history(
    default_classifier: Classifier, subject: str, body: bytes, charset: str, broken: bool,
    raw: bytes,
) -> None:
    for mail in (parse(_message(subject, body, charset, broken)), parse(raw)):
        assert default_classifier.classify(mail, _HISTORY).category in CATEGORIES
    assert len(_HISTORY) <= 50


def test_empty_headerless_and_huge_messages(default_classifier: Classifier) -> None:
    for raw in (b"", b"\r\n\r\n", b"no headers at all, just words",
                b"Subject: " + b"x" * 200_000 + b"\r\n\r\nbody",
                b"Subject: hi\r\n\r\n" + b"word " * 200_000):
        assert default_classifier.classify(parse(raw)).category in CATEGORIES
