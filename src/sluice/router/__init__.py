"""Diversion rules: which recipient keeps a message and where the others' copy goes.

Imports only `sluice.core`. The database functions live in `sluice.router.rulesdb` (not
imported here, so loading rules does not load the ORM).
"""

from sluice.core.mail import GENERATED_HEADER
from sluice.router.decide import decide, is_generated
from sluice.router.rules import DestinationSpec, Match, Rule, RuleSet
from sluice.router.rulesfile import RulesError, load_rules, parse_rules, with_user_rules

__all__ = [
    "GENERATED_HEADER",
    "DestinationSpec",
    "Match",
    "Rule",
    "RuleSet",
    "RulesError",
    "decide",
    "is_generated",
    "load_rules",
    "parse_rules",
    "with_user_rules",
]
