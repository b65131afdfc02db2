"""Users' own rules in the database, so they can be edited per user without the rules file.

Stored rules are JSON in the rules-file format and are read back through the same checks as
the file (`rulesfile.rule_from_data`, `with_user_rules`): a destination removed from the
file, or a conflict with a changed policy, is reported instead of silently mis-routing.
The functions here never commit: the caller decides what one transaction holds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from sqlmodel import Session, col, delete, select

from sluice.core.tables import UserRuleRecord, utcnow
from sluice.router.rules import Rule, RuleSet
from sluice.router.rulesfile import RulesError, rule_from_data, rule_to_data, with_user_rules

#: Problems with stored rules start with this instead of a file name.
SOURCE = "database"


def _records(user: str, rules: Sequence[Rule]) -> list[UserRuleRecord]:
    records = []
    now = utcnow()
    for position, rule in enumerate(rules, start=1):
        data = rule_to_data(rule)
        if data["name"] == f"{user}#{position}":
            del data["name"]  # generated: follows the rule when the API reorders rules
        records.append(UserRuleRecord(user=user, position=position, mode=rule.mode,
                                      rule=json.dumps(data, ensure_ascii=False), updated_at=now))
    return records


def save_user_rules(session: Session, user: str, rules: Sequence[Rule]) -> None:
    """Replace one user's stored rules by `rules`, in order (check them first with
    `rulesfile.with_user_rules`)."""
    user = user.lower()
    session.exec(delete(UserRuleRecord).where(col(UserRuleRecord.user) == user))
    session.add_all(_records(user, rules))
    session.flush()


def save_ruleset_users(session: Session, rules: RuleSet) -> None:
    """Replace every stored user rule by the users' rules of `rules` (e.g. a rules file)."""
    session.exec(delete(UserRuleRecord))
    for user, user_rules in rules.users.items():
        session.add_all(_records(user, user_rules))
    session.flush()


def stored_user_rules(session: Session, rules: RuleSet) -> dict[str, tuple[Rule, ...]]:
    """Every stored user's rules, each checked against the destinations of `rules`."""
    statement = select(UserRuleRecord).order_by(
        col(UserRuleRecord.user), col(UserRuleRecord.position))
    found: dict[str, list[Rule]] = {}
    problems: list[str] = []
    for record in session.exec(statement):
        try:
            found.setdefault(record.user, []).append(_rule(record, rules))
        except RulesError as exc:
            problems += exc.problems
    if problems:
        raise RulesError(problems)
    return {user: tuple(user_rules) for user, user_rules in found.items()}


def load_user_rules(session: Session, rules: RuleSet) -> RuleSet:
    """`rules` with each stored user's rules in place of that user's rules from the file;
    RulesError when a stored rule no longer fits (unknown destination, conflict)."""
    stored: Mapping[str, tuple[Rule, ...]] = stored_user_rules(session, rules)
    return with_user_rules(rules, stored, SOURCE)


def _rule(record: UserRuleRecord, rules: RuleSet) -> Rule:
    where = f"{SOURCE}:{record.user}#{record.position}"
    try:
        data = json.loads(record.rule)
    except ValueError as exc:
        raise RulesError([f"{where}: stored rule is not JSON: {exc}"]) from exc
    if not isinstance(data, dict):
        raise RulesError([f"{where}: stored rule is not a JSON object"])
    data["mode"] = record.mode
    return rule_from_data(data, record.user, record.position, rules.destinations, where)
