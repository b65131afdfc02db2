"""A reply follows its thread (pure): the recipients whose copy of the thread went to a
destination get the reply there too, unless their own rules say otherwise."""

from __future__ import annotations

from collections.abc import Mapping

from sluice.core.decision import DELIVER, DIVERT, ENFORCE, RecipientAction, RoutingDecision
from sluice.router.decide import DIRECT, EXTERNAL, SLUICE_GENERATED
from sluice.router.rules import RuleSet

#: The rule name recorded for a reply that followed its thread.
THREAD_FOLLOWS = "thread-follows"


def follow_threads(decision: RoutingDecision, origins: Mapping[str, str], rules: RuleSet, *,
                   answers_space_comment: bool = False) -> RoutingDecision:
    """Divert to `origins[recipient]` where the rules left the reply in the inbox.

    A recipient's own matching rule always wins. Direct mail stays mail (the rule of the
    policy) — except a reply to a comment that was written in the space: the one it answers
    moved that conversation there themselves.
    """
    if not origins:
        return decision
    category = decision.verdict.category if decision.verdict else ""
    if category == DIRECT and not answers_space_comment:
        return decision
    changed = False
    actions: list[RecipientAction] = []
    for action in decision.actions:
        destination = origins.get(action.recipient.lower())
        own = {rule.name for rule in rules.users.get(action.recipient.lower(), ())}
        if (destination and destination in rules.destinations
                and action.action == DELIVER and action.mode == ENFORCE
                and action.rule not in own and action.rule not in (EXTERNAL, SLUICE_GENERATED)):
            actions.append(RecipientAction(action.recipient, DIVERT, THREAD_FOLLOWS,
                                           destination))
            changed = True
        else:
            actions.append(action)
    return RoutingDecision(decision.verdict, tuple(actions)) if changed else decision
