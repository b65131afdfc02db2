"""The rules as values: what a rule matches, what it does, where diverted mail goes.

Everything here is frozen and validated once by `rulesfile` (or built directly in tests), so
`decide` on the hot path only reads precompiled fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sluice.core.decision import COPY, DIGEST, DIVERT, ENFORCE

#: Actions that put the message in a destination (and so need `to`).
POSTING_ACTIONS = (DIVERT, DIGEST, COPY)

SPACE = "space"
WEBHOOK = "webhook"
APPRISE = "apprise"
DESTINATION_KINDS = (SPACE, WEBHOOK, APPRISE)

#: Rule name owner for organisation policy entries ("policy#1", "policy#2", ...).
POLICY = "policy"

def _empty() -> Mapping[str, object]:
    return MappingProxyType({})


def _frozen_mapping(value: Mapping[str, object]) -> Mapping[str, object]:
    return value if isinstance(value, MappingProxyType) else MappingProxyType(dict(value))


@dataclass(frozen=True, slots=True)
class Match:
    """Conditions of a rule; None means "any". All conditions that are set must hold.

    Addresses and domains are lower case; `subject` is searched (not anchored) in the
    decoded Subject; `min_recipients` counts the distinct To and Cc addresses.
    """

    category: str | None = None
    min_confidence: float | None = None
    sender: str | None = None
    sender_domain: str | None = None
    recipient: str | None = None
    subject: re.Pattern[str] | None = None
    has_attachment: bool | None = None
    min_recipients: int | None = None

    @property
    def needs_verdict(self) -> bool:
        return self.category is not None or self.min_confidence is not None


@dataclass(frozen=True, slots=True)
class Rule:
    """One line of policy: when `match` holds, do `action` (to destination `to`).

    `name` is what every decision records; when a rules file gives none it is generated from
    the owner and position ("alice@example.com#2", "policy#1"). `line` is where the rule
    starts in its rules file (0 when it came from elsewhere, e.g. the database).
    """

    name: str
    match: Match
    action: str
    to: str = ""
    mode: str = ENFORCE
    description: str = ""
    line: int = 0

    @property
    def posts(self) -> bool:
        """Whether enforcing this rule puts the message in a destination."""
        return self.action in POSTING_ACTIONS


@dataclass(frozen=True, slots=True)
class DestinationSpec:
    """A named place diverted mail goes to; the destination code interprets `options`."""

    name: str
    kind: str
    options: Mapping[str, object] = field(default_factory=_empty, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", _frozen_mapping(self.options))


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The organisation policy, each user's own rules and the destinations they name.

    User addresses and internal domains are stored in lower case; `users` maps an address
    to that user's rules in order. The empty RuleSet diverts nothing.
    """

    internal_domains: frozenset[str] = frozenset()
    destinations: Mapping[str, DestinationSpec] = field(default_factory=dict, hash=False)
    policy: tuple[Rule, ...] = ()
    users: Mapping[str, tuple[Rule, ...]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "internal_domains", frozenset(d.lower() for d in self.internal_domains))
        object.__setattr__(self, "destinations", MappingProxyType(dict(self.destinations)))
        object.__setattr__(self, "policy", tuple(self.policy))
        object.__setattr__(self, "users", MappingProxyType(
            {user.lower(): tuple(rules) for user, rules in self.users.items()}))

    def is_internal(self, address: str) -> bool:
        return address.rpartition("@")[2].lower() in self.internal_domains

    def rules_for(self, user: str) -> tuple[Rule, ...]:
        """A user's own rules (without the policy), first to last."""
        return self.users.get(user.lower(), ())

    def all_rules(self) -> tuple[Rule, ...]:
        """Every rule, users' first (in file order), then the policy."""
        return (*(rule for rules in self.users.values() for rule in rules), *self.policy)
