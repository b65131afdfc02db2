"""Hostile input through parse → classify → decide: no input may raise or hang.

Mutated real messages (tests/fuzz/mutations.py) for a time budget: SLUICE_FUZZ_SECONDS
(default 40) in CI; a longer run on demand, e.g. `SLUICE_FUZZ_SECONDS=1800 pytest
tests/fuzz`, or the atheris harness scripts/fuzz_pipeline.py. Every example also has a
deadline: the gateway runs this path on its event loop, so a slow input stalls every session.
Each input that once failed is kept below as a plain regression test. Failures are not
shrunk (shrinking megabyte inputs takes many minutes): hypothesis prints every draw instead.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from sluice.core.htmltext import html_to_text
from sluice.core.mail import Envelope
from sluice.core.parse import normalize_subject, parse
from tests.fuzz.mutations import ENVELOPES, hostile_message, run_pipeline, seed_messages

BUDGET_SECONDS = float(os.environ.get("SLUICE_FUZZ_SECONDS", "40"))
#: Examples per hypothesis run; runs repeat until the budget is spent.
BATCH = 25
#: Far above what any input needs (a megabyte header parses in well under a second), far
#: below what the quadratic inputs found here took (40 s to minutes).
DEADLINE = timedelta(seconds=15)


class HypothesisChooser:
    """Every choice drawn from hypothesis, so a failure shrinks to a small message."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def integer(self, low: int, high: int) -> int:
        return self.data.draw(st.integers(low, high))

    def blob(self, max_size: int) -> bytes:
        return self.data.draw(st.binary(max_size=max_size))


@settings(max_examples=BATCH, deadline=DEADLINE, database=None, phases=(Phase.generate,),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def _one_batch(data: st.DataObject) -> None:
    chooser = HypothesisChooser(data)
    raw = hostile_message(chooser)
    run_pipeline(raw, ENVELOPES[chooser.integer(0, len(ENVELOPES) - 1)])


@pytest.mark.slow
@pytest.mark.timeout(BUDGET_SECONDS + 300)  # the suite's 300 s would cut a longer budget
def test_mutated_real_messages_never_raise() -> None:
    seed_messages()  # read the corpus once, outside the examples' deadline
    stop = time.monotonic() + BUDGET_SECONDS
    batches = 0
    while batches == 0 or time.monotonic() < stop:
        _one_batch()
        batches += 1


def test_every_seed_passes_unmutated() -> None:
    for raw in seed_messages():
        run_pipeline(raw, None)


# -- inputs that once failed --------------------------------------------------------------

HEAD = b"From: Ann <ann@example.com>\r\nTo: bob@example.com\r\nSubject: hostile\r\n"
#: Each took from 40 seconds to many minutes before its fix (quadratic time).
SLOW_INPUTS = {
    "blank lines (textclean ^\\s*)": HEAD + b"\r\n" + b"\r\n" * 20_000,
    "spaced blank lines": HEAD + b"\r\n" + b" \r\n" * 20_000,
    "greeting then spaces (features _GREETING)": HEAD + b"\r\nAb Cd" + b" " * 19_000 + b"x\r\n",
    "unclosed tags (HTMLParser)": HEAD + b"Content-Type: text/html\r\n\r\n" + b"<a " * 30_000,
    "unclosed quoted attributes": HEAD + b"Content-Type: text/html\r\n\r\n" + b"<a b='" * 20_000,
    "unclosed comments": HEAD + b"Content-Type: text/html\r\n\r\n" + b"<!--<" * 30_000,
    "thousands of Re: prefixes": b"Subject: " + b"Re: " * 150_000 + b"\r\n\r\nx\r\n",
}


@pytest.mark.timeout(60)  # a hang guard, not a measurement: each takes well under a second
@pytest.mark.parametrize("raw", SLOW_INPUTS.values(), ids=SLOW_INPUTS.keys())
def test_inputs_that_were_quadratic(raw: bytes) -> None:
    run_pipeline(raw, ENVELOPES[1])


def test_unclosable_markup_reads_as_text() -> None:
    # What HTMLParser itself makes of an opener nothing closes: text, kept.
    assert html_to_text("<p>one</p>two <a three <!-- four") == "one\ntwo <a three <!-- four"
    # Closable markup is untouched: Outlook's conditional sections and comments vanish.
    assert html_to_text("<![if !x]>a<![endif]><!-- c -->b<br>c") == "ab\nc"


def test_subject_prefixes_are_counted_and_stripped_in_one_walk() -> None:
    subject = "Re: AW: [list] Fwd: Re[2]: the plan"
    assert normalize_subject(subject) == "the plan"
    mail = parse(b"Subject: " + subject.encode() + b"\r\n\r\nx\r\n",
                 Envelope("a@example.com", ("b@example.com",)))
    assert mail.thread.reply_depth == 3
    assert mail.thread.normalized_subject == "the plan"


def test_nesting_deeper_than_the_stack_keeps_the_body_opaque() -> None:
    """The stdlib parser recursed once per level and raised RecursionError at ~1,000."""
    levels = b"Content-Type: message/rfc822\r\n\r\n" * 3_000  # no boundaries to count
    raw = HEAD + levels + b"Content-Type: text/plain\r\n\r\ndeep\r\n"
    mail = parse(raw, ENVELOPES[1])
    assert "NestingTooDeepDefect" in mail.defects
    assert mail.subject == "hostile"
    run_pipeline(raw, ENVELOPES[1])


def test_comments_nested_deeper_than_the_stack_give_no_address() -> None:
    """email.utils.getaddresses recursed once per "(" and raised RecursionError."""
    raw = b"From: " + b"(" * 5_000 + b"a@example.com\r\nTo: b@example.com, " + b'("' * 3_000
    mail = parse(raw + b"\r\n\r\nx\r\n", None)
    assert mail.from_addr == ""
    run_pipeline(raw + b"\r\n\r\nx\r\n", ENVELOPES[2])


@pytest.mark.timeout(60)  # a hang guard, not a measurement
def test_many_multipart_containers_keep_the_body_opaque() -> None:
    """The stdlib parser checks each body line against every open boundary: 400 KB of
    lines under 600 levels took 24 s."""
    levels = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
                      for i in range(600))
    raw = HEAD + levels + b"Content-Type: text/plain\r\n\r\n" + b"\r\n" * 200_000
    mail = parse(raw, ENVELOPES[1])
    assert "NestingTooDeepDefect" in mail.defects and mail.subject == "hostile"
    run_pipeline(raw, ENVELOPES[1])
