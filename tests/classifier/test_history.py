"""The sender history: what a sender sent before, counted in arrival order, bounded."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from sluice.classifier.features import to_row
from sluice.classifier.history import (
    SenderHistory,
    facts_in_date_order,
    sent,
    subject_digest,
)
from sluice.classifier.model import Classifier
from sluice.classifier.reasons import describe
from sluice.core.mail import Mail
from sluice.core.parse import parse

START = datetime(2001, 5, 1, 9, 0, tzinfo=UTC)


def mail(sender: str, to: list[str], subject: str = "Hello", *, cc: list[str] = (),
         minutes: int = 0, message_id: str | None = None, extra: str = "") -> Mail:
    date = (START + timedelta(minutes=minutes)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    mid = message_id or f"<{sender}.{minutes}.{subject.replace(' ', '')}@x>"
    head = (f"From: {sender}\r\nTo: {', '.join(to)}\r\n"
            + (f"Cc: {', '.join(cc)}\r\n" if cc else "")
            + f"Subject: {subject}\r\nDate: {date}\r\nMessage-ID: {mid}\r\n{extra}")
    return parse((head + "\r\nSome text.\r\n").encode())


def count(n: int) -> float:
    return math.log1p(n) / 3.0


def test_a_stranger_has_no_history_and_a_message_never_informs_itself() -> None:
    history = SenderHistory()
    facts = history.observe(mail("ann@corp.example", ["bob@corp.example"]))
    assert facts == {"hist_known": 0.0, "hist_reciprocal": 0.0}
    assert len(history) == 1


def test_what_a_sender_sent_before_to_whom() -> None:
    history = SenderHistory()
    team = [f"p{i}@corp.example" for i in range(8)]
    history.observe(mail("ann@corp.example", ["bob@corp.example"], "Budget", minutes=1))
    history.observe(mail("ann@corp.example", ["bob@corp.example"], "Re: Budget", minutes=2))
    history.observe(mail("ann@corp.example", team, "Status", minutes=3))
    history.observe(mail("ann@corp.example", ["news@corp.example"], "Digest", minutes=4,
                         extra="List-Id: <news.corp.example>\r\n"))
    facts = history.observe(mail("ann@corp.example", ["bob@corp.example"], "Budget", minutes=5))
    assert facts["hist_known"] == count(4)
    assert facts["hist_one"] == 2 / 4  # two to Bob alone (the list counts as ten readers)
    assert facts["hist_many"] == 2 / 4  # the team of eight and the list
    assert facts["hist_reply"] == 1 / 4
    assert facts["hist_auto"] == 1 / 4
    assert facts["hist_same_subject"] == 1.0  # "Budget" and "Re: Budget" are one thread
    assert facts["hist_pair"] == count(2)
    assert facts["hist_reciprocal"] == 0.0
    # Bob answers: Ann has written to him three times, he never to her before.
    answer = history.observe(mail("bob@corp.example", ["ann@corp.example"], "Re: Budget",
                                  minutes=6))
    assert answer["hist_known"] == 0.0
    assert answer["hist_reciprocal"] == count(3)
    other = history.observe(mail("ann@corp.example", ["carl@corp.example"], "Lunch", minutes=7))
    assert other["hist_pair"] == 0.0
    assert other["hist_same_subject"] == 0.0
    assert other["hist_reciprocal"] == 0.0


def test_a_copy_gets_the_facts_of_its_first_arrival_and_is_not_counted_twice() -> None:
    history = SenderHistory()
    history.observe(mail("ann@corp.example", ["bob@corp.example"], minutes=1))
    first = mail("ann@corp.example", ["bob@corp.example"], minutes=2, message_id="<m@x>")
    facts = history.observe(first)
    assert history.observe(first) == facts
    # The same message delivered again to another recipient (another transaction).
    again = mail("ann@corp.example", ["dan@corp.example"], minutes=2, message_id="<m@x>")
    assert history.observe(again) == facts
    later = history.observe(mail("ann@corp.example", ["bob@corp.example"], minutes=3))
    assert later["hist_known"] == count(2)
    assert later["hist_pair"] == count(2)


def test_the_counts_are_bounded_and_forget_the_least_recent_first() -> None:
    history = SenderHistory(max_senders=2, max_pairs=3, max_copies=2)
    for minute, sender in enumerate(["a@x.example", "b@x.example", "a@x.example",
                                     "c@x.example"]):
        history.observe(mail(sender, ["r1@x.example", "r2@x.example"], minutes=minute))
    assert len(history) == 2  # b was the least recently seen sender
    assert history.facts(sent(mail("b@x.example", ["r1@x.example"], minutes=9)))[
        "hist_known"] == 0
    assert history.facts(sent(mail("a@x.example", ["q@x.example"], minutes=9)))[
        "hist_known"] == count(2)
    assert len(history._pairs) <= 3 and len(history._copies) <= 2


def test_facts_in_date_order_count_by_date_not_by_position() -> None:
    late = mail("ann@corp.example", ["bob@corp.example"], "Plan", minutes=30)
    early = mail("ann@corp.example", ["bob@corp.example"], "Plan", minutes=10)
    undated = parse(b"From: ann@corp.example\r\nTo: bob@corp.example\r\nSubject: Plan\r\n"
                    b"Message-ID: <u@x>\r\n\r\nText\r\n")
    facts = facts_in_date_order([undated, late, early])
    assert facts[2]["hist_known"] == 0.0  # the earliest
    assert facts[1]["hist_known"] == count(1)
    assert facts[0]["hist_known"] == count(2)  # undated: after every dated one


def test_header_only_subjects_are_kept_as_the_digests_such_a_gateway_records() -> None:
    import hashlib

    digest = "sha256:" + hashlib.sha256(b"budget").hexdigest()
    assert subject_digest("budget") == subject_digest(digest) == digest
    assert subject_digest("") == ""
    plain = sent(mail("Ann@Corp.example", ["Bob@Corp.example"], "Re: Budget"))
    hashed = sent(mail("Ann@Corp.example", ["Bob@Corp.example"], "Re: Budget"), digests=True)
    assert plain.recipients == ("bob@corp.example",) and plain.sender == "ann@corp.example"
    assert (plain.subject, hashed.subject) == ("budget", digest)


def test_the_facts_from_the_model_s_header_facts_are_the_same() -> None:
    team = [f"p{i}@corp.example" for i in range(8)]
    cases = [mail("ann@corp.example", ["bob@corp.example"], "Re: Budget"),
             mail("news@corp.example", team, "Digest", extra="List-Id: <n.lists.example>\r\n"),
             mail("no-reply@corp.example", ["team@corp.example"], "Alert"),
             mail("ann@corp.example", ["bob@corp.example"], "Plan",
                  extra="In-Reply-To: <x@y>\r\nPrecedence: bulk\r\n"),
             parse(b"Subject: hi\r\n\r\nno sender at all")]
    for message in cases:
        assert sent(message, to_row(message).headers) == sent(message)


def test_the_facts_reach_the_model_and_are_said_in_words(default_classifier: Classifier) -> None:
    history = SenderHistory()
    for minute in range(5):
        history.observe(mail("ann@corp.example", ["bob@corp.example"], minutes=minute))
    message = mail("ann@corp.example", ["bob@corp.example"], minutes=9)
    facts = history.observe(message)
    row = to_row(message, facts)
    assert {k: row.headers[k] for k in facts} == facts
    scorer = default_classifier._scorer
    names = {scorer.feature(i)[1] for i in range(scorer.coef_by_feature.shape[0])}
    assert set(facts) <= names  # the shipped model reads every fact
    assert describe("headers", "hist_pair", row) == (
        "the sender has written to these recipients 5 times before")
    assert describe("headers", "hist_one", row) == (
        "the sender writes to one person in 100% of their mail")
    with_history = default_classifier.verdict(row)
    without = default_classifier.classify(message)
    assert with_history.category and without.category
