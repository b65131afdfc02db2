"""The pipeline hook between parse and relay: classification and routing plug in here.

A hook gets the parsed Mail and the envelope recipients and returns a RoutingDecision.
Whatever a hook does wrong, the message is relayed unchanged (fail-open): see `decide`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sluice.core.decision import RoutingDecision
from sluice.core.mail import Mail

log = logging.getLogger(__name__)

PipelineHook = Callable[[Mail, tuple[str, ...]], Awaitable[RoutingDecision]]

FAIL_OPEN_RULE = "fail-open"


async def deliver_everything(mail: Mail, recipients: tuple[str, ...]) -> RoutingDecision:
    """The hook of a plain relay: every recipient keeps the message as mail."""
    return RoutingDecision.deliver_all(recipients)


async def decide(hook: PipelineHook, mail: Mail | None,
                 recipients: tuple[str, ...]) -> RoutingDecision:
    """Run the hook; any error (or no parsed mail) means: deliver to everyone, unchanged."""
    if mail is None:
        return RoutingDecision.deliver_all(recipients, rule=FAIL_OPEN_RULE)
    try:
        decision = await hook(mail, recipients)
    except Exception:
        log.exception("pipeline hook failed for %s; relaying unchanged", mail.message_id)
        return RoutingDecision.deliver_all(recipients, rule=FAIL_OPEN_RULE)
    missing = set(recipients) - {a.recipient for a in decision.actions}
    if missing:
        log.error("pipeline hook left out %d recipient(s); they keep the mail", len(missing))
        return RoutingDecision(decision.verdict, decision.actions + RoutingDecision.deliver_all(
            tuple(r for r in recipients if r in missing), rule=FAIL_OPEN_RULE).actions)
    return decision
