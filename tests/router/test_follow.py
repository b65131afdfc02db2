"""A reply follows its thread, unless the recipient's own rules or the direct rule say no."""

from __future__ import annotations

from sluice.core.decision import DELIVER, DIVERT
from sluice.router.decide import decide
from sluice.router.follow import THREAD_FOLLOWS, follow_threads
from sluice.router.rulesfile import parse_rules
from tests.router.helpers import message, verdict

RULES = parse_rules("""\
internal_domains: [example.com]
destinations:
  offers: {kind: space, channel: offers}
users:
  bob@example.com:
    - {name: bob-keeps-acme, match: {sender_domain: vendor.example}, action: deliver}
""")
TEAM = ("alice@example.com", "bob@example.com", "carol@example.com", "pat@partner.example")
ORIGINS = {"alice@example.com": "offers", "bob@example.com": "offers",
           "pat@partner.example": "offers", "carol@example.com": "gone-destination"}


def actions(category: str, *, answers_space_comment: bool = False) -> dict[str, tuple[str, str]]:
    mail = message(to=TEAM, subject="Re: Offer v2")
    decision = decide(mail, verdict(category), RULES)
    followed = follow_threads(decision, ORIGINS, RULES,
                              answers_space_comment=answers_space_comment)
    return {a.recipient: (a.action, a.rule) for a in followed.actions}


def test_reply_follows_where_the_rules_left_it_in_the_inbox() -> None:
    assert actions("discussion") == {
        "alice@example.com": (DIVERT, THREAD_FOLLOWS),
        "bob@example.com": (DELIVER, "bob-keeps-acme"),  # his own rule wins
        "carol@example.com": (DELIVER, ""),  # a destination no longer configured
        "pat@partner.example": (DELIVER, "external"),  # outsiders always keep mail
    }


def test_direct_reply_stays_mail_unless_it_answers_a_space_comment() -> None:
    assert actions("direct")["alice@example.com"] == (DELIVER, "")
    assert actions("direct", answers_space_comment=True)["alice@example.com"] == (
        DIVERT, THREAD_FOLLOWS)


def test_no_origins_no_change() -> None:
    mail = message(to=TEAM)
    decision = decide(mail, verdict("discussion"), RULES)
    assert follow_threads(decision, {}, RULES) is decision
