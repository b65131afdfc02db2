"""decide: Mail + Verdict + RuleSet -> RoutingDecision, one action per envelope recipient.

Pure and on the gateway's hot path: the facts every rule looks at are computed once per
message, and the policy's answer (the same for every user without a matching own rule) is
computed at most once per message.
"""

from __future__ import annotations

from sluice.core.decision import DELIVER, RecipientAction, RoutingDecision
from sluice.core.mail import GENERATED_HEADER, Mail
from sluice.core.verdict import Verdict
from sluice.router.rules import Match, Rule, RuleSet

#: Rule names recorded for the decisions no rule can override.
EXTERNAL = "external"
SLUICE_GENERATED = "sluice-generated"
DIRECT = "direct"

_GENERATED_KEY = GENERATED_HEADER.lower()


class _Facts:
    """What rules look at, computed once per message."""

    __slots__ = ("addresses", "attachment", "category", "confidence", "recipient_count",
                 "sender", "sender_domain", "subject")

    def __init__(self, mail: Mail, verdict: Verdict | None) -> None:
        self.sender = (mail.from_addr or mail.envelope.mail_from).lower()
        self.sender_domain = self.sender.rpartition("@")[2]
        header = set(mail.to) | set(mail.cc)
        self.recipient_count = len(header)
        self.addresses = header | {r.lower() for r in mail.envelope.rcpt_tos}
        self.subject = mail.subject
        self.attachment = bool(mail.attachments)
        self.category = verdict.category if verdict is not None else None
        self.confidence = verdict.confidence if verdict is not None else 0.0


def _holds(match: Match, facts: _Facts) -> bool:
    """Whether every condition of `match` holds; cheapest and most selective first."""
    if match.category is not None and match.category != facts.category:
        return False
    if match.min_confidence is not None and (
            facts.category is None or facts.confidence < match.min_confidence):
        return False
    if match.has_attachment is not None and match.has_attachment != facts.attachment:
        return False
    if match.min_recipients is not None and facts.recipient_count < match.min_recipients:
        return False
    if match.sender is not None and match.sender != facts.sender:
        return False
    if match.sender_domain is not None and not _within(facts.sender_domain, match.sender_domain):
        return False
    if match.recipient is not None and match.recipient not in facts.addresses:
        return False
    return match.subject is None or match.subject.search(facts.subject) is not None


def _within(domain: str, parent: str) -> bool:
    return domain == parent or domain.endswith("." + parent)


def _first(rules: tuple[Rule, ...], facts: _Facts, own: bool) -> Rule | None:
    """First matching rule; direct mail only leaves the inbox by the user's explicit rule."""
    for rule in rules:
        if not _holds(rule.match, facts):
            continue
        if (facts.category == DIRECT and rule.action != DELIVER
                and not (own and rule.match.category == DIRECT)):
            continue
        return rule
    return None


def _action(recipient: str, rule: Rule | None) -> RecipientAction:
    if rule is None:
        return RecipientAction(recipient)
    return RecipientAction(recipient, rule.action, rule.name, rule.to, rule.mode)


def is_generated(mail: Mail) -> bool:
    """Whether Sluice wrote this message itself; such mail is never diverted again."""
    return any(key.lower() == _GENERATED_KEY for key, _ in mail.headers)


def decide(mail: Mail, verdict: Verdict | None, rules: RuleSet) -> RoutingDecision:
    """Each envelope recipient's action: own rules, then the policy; first match wins."""
    generated = is_generated(mail)
    facts: _Facts | None = None
    policy_rule: Rule | None = None
    policy_done = False
    actions: list[RecipientAction] = []
    for recipient in mail.envelope.rcpt_tos:
        if not rules.is_internal(recipient):
            actions.append(RecipientAction(recipient, rule=EXTERNAL))
            continue
        if generated:
            actions.append(RecipientAction(recipient, rule=SLUICE_GENERATED))
            continue
        if facts is None:
            facts = _Facts(mail, verdict)
        own = rules.users.get(recipient.lower())
        rule = _first(own, facts, own=True) if own else None
        if rule is None:
            if not policy_done:
                policy_rule, policy_done = _first(rules.policy, facts, own=False), True
            rule = policy_rule
        actions.append(_action(recipient, rule))
    return RoutingDecision(verdict, tuple(actions))
