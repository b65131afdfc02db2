"""The policy `sluice analyze` applies when no rules file is given: the organisation policy
that moves broadcasts, material, feedback, events and automated mail to channels.

It is a real rules file, read by the same `rulesfile` parser as any other, in `enforce` mode
(the analyzer only counts; nothing is moved). When no internal domains are named, every
recipient of a message counts as internal: a mailbox analysis then counts every inbox the
message reached (`every_recipient_internal`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from sluice.core.mail import Mail
from sluice.router.rules import RuleSet
from sluice.router.rulesfile import parse_rules

#: Categories the default policy diverts, each to a channel of its own.
DIVERTED_CATEGORIES = ("broadcast", "material", "feedback", "event", "automated")
#: Below this confidence a message stays mail (the starter policy's threshold).
DEFAULT_MIN_CONFIDENCE = 0.7
#: Placeholder domain when the analysis counts every recipient as internal.
_ANY_DOMAIN = "internal.invalid"
#: Rule sets with the domains of recent messages added (bounded; cleared when full).
_CACHE_LIMIT = 1024

_TEMPLATE = """\
# The organisation policy `sluice analyze` assumes when no rules file is given.
internal_domains: [{domains}]
destinations:
{destinations}
policy:
{policy}
"""


def default_policy_text(domains: Sequence[str] = ()) -> str:
    """The default policy as a rules file (YAML)."""
    dests = "\n".join(f"  {c}-channel: {{kind: space, channel: {c}}}"
                      for c in DIVERTED_CATEGORIES)
    policy = "\n".join(
        f"  - {{name: {c}-to-channel, match: {{category: {c}, min_confidence: "
        f"{DEFAULT_MIN_CONFIDENCE}}}, action: divert, to: {c}-channel, mode: enforce}}"
        for c in DIVERTED_CATEGORIES)
    return _TEMPLATE.format(domains=", ".join(domains or (_ANY_DOMAIN,)),
                            destinations=dests, policy=policy)


def default_policy(domains: Sequence[str] = ()) -> RuleSet:
    return parse_rules(default_policy_text(domains), "default analysis policy")


def with_domains(rules: RuleSet, domains: Iterable[str]) -> RuleSet:
    """The rules with more internal domains."""
    extra = frozenset(d.lower() for d in domains)
    if extra <= rules.internal_domains:
        return rules
    return replace(rules, internal_domains=rules.internal_domains | extra)


class EveryRecipientInternal:
    """Gives, per message, the rules with every recipient's domain internal."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self._cache: dict[frozenset[str], RuleSet] = {}

    def __call__(self, mail: Mail) -> RuleSet:
        domains = frozenset(r.rpartition("@")[2].lower() for r in mail.envelope.rcpt_tos)
        found = self._cache.get(domains)
        if found is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            found = self._cache[domains] = with_domains(self.rules, domains)
        return found
