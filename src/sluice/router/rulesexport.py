"""A RuleSet written back as a rules file, so rules edited in the web app can be kept in git.

The output reads back through `parse_rules` (and `sluice rules check`) to the same rules:
generated names ("policy#2") are left out so they are generated again, `mode` is written
only when it is not the default (enforce), a space's channel is written out explicitly.
"""

from __future__ import annotations

from typing import Any

import yaml

from sluice.core.decision import ENFORCE
from sluice.router.rules import POLICY, Rule, RuleSet
from sluice.router.rulesfile import rule_to_data


def rule_file_data(rule: Rule, owner: str, position: int) -> dict[str, Any]:
    """One rule as the rules file writes it: a generated name ("owner#2") left out, so it
    follows the rule when the list is reordered, and `mode` only when not enforce."""
    data: dict[str, Any] = rule_to_data(rule)
    if data["name"] == f"{owner}#{position}":
        del data["name"]
    if rule.mode != ENFORCE:
        data["mode"] = rule.mode
    return data


def ruleset_data(rules: RuleSet) -> dict[str, Any]:
    """The rules-file sections as plain data, in the file's order."""
    return {
        "internal_domains": sorted(rules.internal_domains),
        "destinations": {name: {"kind": spec.kind, **dict(spec.options)}
                         for name, spec in rules.destinations.items()},
        "policy": [rule_file_data(rule, POLICY, position)
                   for position, rule in enumerate(rules.policy, start=1)],
        "users": {user: [rule_file_data(rule, user, position)
                         for position, rule in enumerate(user_rules, start=1)]
                  for user, user_rules in sorted(rules.users.items())},
    }


def ruleset_yaml(rules: RuleSet, comment: str = "") -> str:
    """The rules file text; `comment` (one line per line) goes on top as # comments."""
    head = "".join(f"# {line}\n" for line in comment.splitlines())
    return head + yaml.safe_dump(ruleset_data(rules), sort_keys=False, allow_unicode=True,
                                 default_flow_style=None, width=100)
