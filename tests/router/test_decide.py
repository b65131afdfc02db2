"""decide: one action per envelope recipient, own rules before policy, direct mail protected."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.core.decision import AUDIT, COPY, DELIVER, DIGEST, DIVERT, ENFORCE, RecipientAction
from sluice.core.mail import Envelope, Mail, ThreadKeys
from sluice.core.verdict import CATEGORIES, Verdict
from sluice.router.decide import GENERATED_HEADER, decide
from sluice.router.rules import DestinationSpec, Match, Rule, RuleSet
from sluice.router.rulesfile import load_rules, parse_rules
from tests.router.helpers import ISSUE_EXAMPLE, message, verdict

EXAMPLE = load_rules(ISSUE_EXAMPLE)
TEAM = ("alice@example.com", "bob@example.com", "carol@example.com", "dan@example.com",
        "erin@partner.example")


def outcomes(mail: Mail, v: Verdict | None, rules: RuleSet = EXAMPLE) -> dict[str, tuple[
        str, str, str, str]]:
    decision = decide(mail, v, rules)
    assert decision.verdict is v
    return {a.recipient: (a.action, a.rule, a.destination, a.mode) for a in decision.actions}


def test_cc_to_all_broadcast_each_recipient_by_their_rules() -> None:
    mail = message(to=TEAM[:2], cc=TEAM[2:], subject="New price list")
    assert outcomes(mail, verdict("broadcast", 0.8)) == {
        "alice@example.com": (DIVERT, "alice@example.com#1", "offering-updates", ENFORCE),
        "bob@example.com": (DELIVER, "", "", ENFORCE),  # 5 recipients: below the policy's 10
        "carol@example.com": (DELIVER, "", "", ENFORCE),
        "dan@example.com": (DELIVER, "", "", ENFORCE),
        "erin@partner.example": (DELIVER, "external", "", ENFORCE),
    }


def test_policy_in_audit_mode_is_recorded_but_keeps_the_mail() -> None:
    many = tuple(f"user{i}@example.com" for i in range(10))
    mail = message(to=("alice@example.com", "bob@example.com"), cc=many,
                   rcpts=("alice@example.com", "bob@example.com"))
    decision = decide(mail, verdict("broadcast", 0.6), EXAMPLE)
    alice, bob = decision.actions
    # Alice's own rule needs confidence 0.7: the policy decides for both.
    assert alice == RecipientAction("alice@example.com", DIVERT, "policy#2", "offering-updates",
                                    AUDIT)
    assert bob.rule == "policy#2"
    assert alice.keeps_mail and not alice.posts


def test_own_rule_without_category_needs_no_verdict() -> None:
    fyi = message(subject="[FYI] minutes of Monday")
    assert outcomes(fyi, None)["alice@example.com"] == (
        DIGEST, "alice@example.com#2", "offering-updates", ENFORCE)
    partner = message(sender="Ann <ann@eu.partner.example>", to=("bob@example.com",),
                      attachment=True)
    assert outcomes(partner, None)["bob@example.com"][:2] == (DIVERT, "bob@example.com#1")
    no_attachment = message(sender="ann@partner.example", to=("bob@example.com",))
    assert outcomes(no_attachment, None)["bob@example.com"] == (DELIVER, "", "", ENFORCE)


def test_category_rules_need_a_verdict() -> None:
    mail = message(cc=tuple(f"u{i}@example.com" for i in range(12)))
    assert outcomes(mail, None)["alice@example.com"] == (DELIVER, "", "", ENFORCE)
    assert outcomes(mail, verdict("automated"))["alice@example.com"][1] == "policy#1"


def test_direct_mail_is_only_diverted_by_the_users_own_direct_rule() -> None:
    rules = parse_rules("""
internal_domains: [example.com]
destinations: {box: {kind: space}}
policy:
  - {match: {sender_domain: partner.example}, action: divert, to: box}
users:
  alice@example.com:
    - {match: {subject: "^\\\\[FYI\\\\]"}, action: copy, to: box}
  bob@example.com:
    - {match: {category: direct, sender: boss@partner.example}, action: divert, to: box}
""")
    mail = message(sender="boss@partner.example", to=("alice@example.com", "bob@example.com",
                                                      "carol@example.com"),
                   subject="[FYI] your review")
    assert outcomes(mail, verdict("direct"), rules) == {
        "alice@example.com": (DELIVER, "", "", ENFORCE),  # neither her copy rule nor policy
        "bob@example.com": (DIVERT, "bob@example.com#1", "box", ENFORCE),
        "carol@example.com": (DELIVER, "", "", ENFORCE),
    }
    # The same message classified otherwise is diverted as the rules say.
    assert outcomes(mail, verdict("discussion"), rules) == {
        "alice@example.com": (COPY, "alice@example.com#1", "box", ENFORCE),
        "bob@example.com": (DIVERT, "policy#1", "box", ENFORCE),
        "carol@example.com": (DIVERT, "policy#1", "box", ENFORCE),
    }


def test_a_policy_rule_naming_direct_never_diverts_it() -> None:
    # The loader refuses such a policy entry; a RuleSet built in code is protected as well.
    rules = RuleSet(frozenset({"example.com"}), {"a": DestinationSpec("a", "space")}, policy=(
        Rule("grab-direct", Match(category="direct"), DIVERT, "a"),))
    assert outcomes(message(), verdict("direct"), rules)["alice@example.com"] == (
        DELIVER, "", "", ENFORCE)


def test_a_deliver_rule_still_matches_direct_mail() -> None:
    rules = RuleSet(frozenset({"example.com"}), policy=(
        Rule("keep-direct", Match(category="direct"), DELIVER),))
    mail = message()
    assert outcomes(mail, verdict("direct"), rules)["alice@example.com"][1] == "keep-direct"


def test_mail_sluice_generated_is_never_diverted() -> None:
    digest = message(subject="[FYI] your digest", to=("alice@example.com", "erin@other.org"),
                     headers={GENERATED_HEADER: "digest"})
    assert outcomes(digest, verdict("broadcast")) == {
        "alice@example.com": (DELIVER, "sluice-generated", "", ENFORCE),
        "erin@other.org": (DELIVER, "external", "", ENFORCE),
    }
    empty_value = message(subject="[FYI] x", headers={GENERATED_HEADER: ""})
    assert outcomes(empty_value, None)["alice@example.com"][1] == "sluice-generated"


def test_external_and_odd_recipients_keep_the_mail() -> None:
    mail = message(rcpts=("ALICE@Example.COM", "postmaster", "alice@sub.example.com",
                          "x@example.com.evil"), subject="[FYI] note")
    assert outcomes(mail, None) == {
        "ALICE@Example.COM": (DIGEST, "alice@example.com#2", "offering-updates", ENFORCE),
        "postmaster": (DELIVER, "external", "", ENFORCE),
        "alice@sub.example.com": (DELIVER, "external", "", ENFORCE),
        "x@example.com.evil": (DELIVER, "external", "", ENFORCE),
    }


def test_first_match_wins_and_own_rules_come_first() -> None:
    rules = parse_rules("""
internal_domains: [example.com]
destinations: {a: {kind: space}}
policy:
  - {name: policy-first, match: {category: event}, action: divert, to: a}
  - {name: policy-second, match: {category: event}, action: digest, to: a}
users:
  alice@example.com:
    - {name: mine-first, match: {category: event, has_attachment: true}, action: deliver}
    - {name: mine-second, match: {category: event}, action: copy, to: a}
""")
    invite = message(attachment=True, to=("alice@example.com", "bob@example.com"))
    assert {k: v[1] for k, v in outcomes(invite, verdict("event"), rules).items()} == {
        "alice@example.com": "mine-first", "bob@example.com": "policy-first"}
    plain = message(to=("alice@example.com",))
    assert outcomes(plain, verdict("event"), rules)["alice@example.com"][1] == "mine-second"


@pytest.mark.parametrize(("to", "cc", "rcpts", "matches"), [
    (TEAM[:3], TEAM[3:], ("alice@example.com",), True),  # 5 header recipients
    (TEAM[:3], (*TEAM[3:], "alice@example.com"), ("alice@example.com",), True),  # distinct
    (("alice@example.com",), (), TEAM, False),  # envelope recipients are not counted
    (TEAM[:2], TEAM[2:4], ("alice@example.com",), False),
])
def test_min_recipients_counts_distinct_to_and_cc(
        to: tuple[str, ...], cc: tuple[str, ...], rcpts: tuple[str, ...], matches: bool) -> None:
    rules = RuleSet(frozenset({"example.com"}), policy=(
        Rule("crowd", Match(min_recipients=5), DELIVER),))
    mail = message(to=to, cc=cc, rcpts=rcpts)
    assert (decide(mail, None, rules).actions[0].rule == "crowd") is matches


@pytest.mark.parametrize(("match", "mail", "matches"), [
    (Match(recipient="sales-all@example.com"),
     message(to=("sales-all@example.com",), rcpts=("alice@example.com",)), True),
    (Match(recipient="sales-all@example.com"), message(rcpts=("alice@example.com",)), False),
    (Match(sender="news@vendor.example"), message(), True),
    (Match(sender="bounce@vendor.example"), message(), False),  # the From header decides
    (Match(sender_domain="vendor.example"), message(sender="a@mail.vendor.example"), True),
    (Match(sender_domain="vendor.example"), message(sender="a@notvendor.example"), False),
    (Match(subject=re.compile("price", re.I)), message(subject="New PRICE list"), True),
    (Match(subject=re.compile("^price")), message(subject="New price list"), False),
    (Match(has_attachment=False), message(attachment=True), False),
    (Match(has_attachment=True), message(attachment=True), True),
])
def test_match_keys(match: Match, mail: Mail, matches: bool) -> None:
    rules = RuleSet(frozenset({"example.com"}), {"a": DestinationSpec("a", "space")},
                    users={"alice@example.com": (Rule("r", match, DIVERT, "a"),)})
    assert (decide(mail, verdict("broadcast"), rules).actions[0].action == DIVERT) is matches


def test_min_confidence_is_inclusive() -> None:
    rules = RuleSet(frozenset({"example.com"}), policy=(
        Rule("sure", Match(category="event", min_confidence=0.7), DELIVER),))
    assert decide(message(), verdict("event", 0.7), rules).actions[0].rule == "sure"
    assert decide(message(), verdict("event", 0.69), rules).actions[0].rule == ""


def test_without_rules_everything_is_delivered() -> None:
    mail = message(to=TEAM)
    decision = decide(mail, verdict("broadcast"), RuleSet())
    assert [(a.recipient, a.action, a.rule) for a in decision.actions] == [
        (r, DELIVER, "external") for r in TEAM]


# -- property: never raises, one action per envelope recipient, protections hold ---------------

ADDRESSES = ("alice@example.com", "bob@example.com", "Carol@EXAMPLE.com", "x@other.org",
             "news@vendor.example", "ann@partner.example", "list@example.com", "odd", "")
DESTS = ("a", "b")

matches = st.builds(
    Match,
    category=st.none() | st.sampled_from(CATEGORIES),
    min_confidence=st.none() | st.floats(0, 1),
    sender=st.none() | st.sampled_from(ADDRESSES[:7]).map(str.lower),
    sender_domain=st.none() | st.sampled_from(("example.com", "vendor.example", "partner.example")),
    recipient=st.none() | st.sampled_from(ADDRESSES[:7]).map(str.lower),
    subject=st.none() | st.sampled_from((re.compile("FYI"), re.compile("^$"), re.compile("(?i)x"))),
    has_attachment=st.none() | st.booleans(),
    min_recipients=st.none() | st.integers(1, 6),
)


@st.composite
def rulesets(draw: st.DrawFn) -> RuleSet:
    counter = iter(range(1_000_000))

    def rule(owner: str) -> Rule:
        action = draw(st.sampled_from((DELIVER, DIVERT, DIGEST, COPY)))
        return Rule(f"{owner}#{next(counter)}", draw(matches), action,
                    "" if action == DELIVER else draw(st.sampled_from(DESTS)),
                    draw(st.sampled_from((ENFORCE, AUDIT))))

    users = draw(st.lists(st.sampled_from(ADDRESSES[:3]), unique=True, max_size=3))
    return RuleSet(
        frozenset({"example.com"}),
        {d: DestinationSpec(d, "space") for d in DESTS},
        tuple(rule("policy") for _ in range(draw(st.integers(0, 4)))),
        {u: tuple(rule(u.lower()) for _ in range(draw(st.integers(0, 3)))) for u in users},
    )


@st.composite
def mails(draw: st.DrawFn) -> Mail:
    headers = [("Subject", draw(st.text(max_size=20)))]
    if draw(st.booleans()):
        headers.append((GENERATED_HEADER, "1"))
    to = tuple(draw(st.lists(st.sampled_from(ADDRESSES), max_size=6)))
    return Mail(
        envelope=Envelope(draw(st.sampled_from(ADDRESSES)),
                          tuple(draw(st.lists(st.sampled_from(ADDRESSES) | st.text(max_size=8),
                                              max_size=8)))),
        raw=b"", message_id="", subject=headers[0][1],
        from_addr=draw(st.sampled_from(ADDRESSES)), from_name="", to=to,
        cc=tuple(draw(st.lists(st.sampled_from(ADDRESSES), max_size=4))), reply_to=(),
        date=None, thread=ThreadKeys("", "", (), "", 0), list_id="", precedence="",
        auto_submitted="", headers=tuple(headers), text="", html="",
        attachments=(), inline_images=0,
    )


verdicts = st.none() | st.builds(Verdict, st.sampled_from(CATEGORIES), st.floats(0, 1),
                                 st.just(()), st.just("p"))


@settings(max_examples=300, deadline=None)
@given(mail=mails(), v=verdicts, rules=rulesets())
def test_decide_never_raises_and_answers_every_recipient(
        mail: Mail, v: Verdict | None, rules: RuleSet) -> None:
    decision = decide(mail, v, rules)
    assert [a.recipient for a in decision.actions] == list(mail.envelope.rcpt_tos)
    by_name = {rule.name: rule for rule in rules.all_rules()}
    for action in decision.actions:
        if not rules.is_internal(action.recipient):
            assert (action.action, action.rule) == (DELIVER, "external")
        elif mail.header(GENERATED_HEADER) or any(
                k == GENERATED_HEADER for k, _ in mail.headers):
            assert (action.action, action.rule) == (DELIVER, "sluice-generated")
        if action.action != DELIVER:
            rule = by_name[action.rule]
            assert (action.destination, action.mode) == (rule.to, rule.mode)
            if v is not None and v.category == "direct":
                own = rules.rules_for(action.recipient)
                assert rule in own and rule.match.category == "direct"
