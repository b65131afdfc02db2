"""Rules in the database: users' own rules and the organisation policy as edited in the web
app, in place of the rules file's, with an audit trail of who changed them.

Stored rules are JSON in the rules-file format and are read back through the same checks as
the file (`rulesfile.rule_from_data`, `semantic_problems` via `with_user_rules`): a
destination removed from the file, or a conflict with a changed policy, is reported instead
of silently mis-routing. Precedence: a stored list (even an empty one) replaces the file's
list of the same owner; the file keeps internal_domains and destinations.

Whose rules are stored is said by a `stored_rules` row per owner (a user's address, or
`policy`, which can never be an address); rows of `user_rule` without such a row (written
before it existed) count as stored too. The functions here never commit: the caller decides
what one transaction holds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, delete, select

from sluice.core.tables import (
    PolicyRuleRecord,
    RulesChangeRecord,
    StoredRulesRecord,
    UserRuleRecord,
    utcnow,
)
from sluice.router.rules import POLICY, Rule, RuleSet
from sluice.router.rulesexport import rule_file_data
from sluice.router.rulesfile import RulesError, rule_from_data, with_user_rules

#: Problems with stored rules start with this instead of a file name.
SOURCE = "database"
#: `rules_change.change`: a new list was stored / the stored list was dropped (file again).
REPLACED = "replaced"
RESTORED = "restored"


@dataclass(frozen=True, slots=True)
class RulesChange:
    """One entry of the audit trail."""

    at: datetime
    by: str
    #: A user's address, or "policy".
    owner: str
    change: str
    rule_count: int
    #: The rule names of the new list, in order.
    names: tuple[str, ...]


def _json(rule: Rule, owner: str, position: int) -> str:
    data = rule_file_data(rule, owner, position)
    data.pop("mode", None)  # kept in its own column
    return json.dumps(data, ensure_ascii=False)


def _records(user: str, rules: Sequence[Rule]) -> list[UserRuleRecord]:
    now = utcnow()
    return [UserRuleRecord(user=user, position=position, mode=rule.mode,
                           rule=_json(rule, user, position), updated_at=now)
            for position, rule in enumerate(rules, start=1)]


def _record_change(session: Session, owner: str, change: str, rules: Sequence[Rule],
                   by: str) -> None:
    """Mark `owner`'s rules as stored (or not, when restored) and log who did it."""
    now = utcnow()
    marker = session.get(StoredRulesRecord, owner)
    if change == RESTORED:
        if marker is not None:
            session.delete(marker)
    elif marker is None:
        session.add(StoredRulesRecord(owner=owner, rule_count=len(rules), updated_at=now,
                                      updated_by=by))
    else:
        marker.rule_count, marker.updated_at, marker.updated_by = len(rules), now, by
        session.add(marker)
    data = [rule_file_data(rule, owner, position)
            for position, rule in enumerate(rules, start=1)]
    session.add(RulesChangeRecord(at=now, by=by, owner=owner, change=change,
                                  rule_count=len(rules),
                                  rules=json.dumps(data, ensure_ascii=False)))


def save_user_rules(session: Session, user: str, rules: Sequence[Rule], *,
                    by: str = "") -> None:
    """Replace one user's stored rules by `rules`, in order (check them first with
    `rulesfile.with_user_rules`). An empty list stores "no own rules": the file's rules for
    this user stay out. `by` is who did it, for the audit trail."""
    user = user.lower()
    session.exec(delete(UserRuleRecord).where(col(UserRuleRecord.user) == user))
    session.add_all(_records(user, rules))
    _record_change(session, user, REPLACED, rules, by or user)
    session.flush()


def save_ruleset_users(session: Session, rules: RuleSet, *, by: str = "") -> None:
    """Replace every stored user rule by the users' rules of `rules` (e.g. a rules file)."""
    session.exec(delete(UserRuleRecord))
    session.exec(delete(StoredRulesRecord).where(col(StoredRulesRecord.owner) != POLICY))
    session.flush()
    for user, user_rules in rules.users.items():
        session.add_all(_records(user, user_rules))
        _record_change(session, user, REPLACED, user_rules, by)
    session.flush()


def save_policy(session: Session, policy: Sequence[Rule], *, by: str) -> None:
    """Store the organisation policy in place of the file's (check it first with
    `with_policy` against the rules in force)."""
    session.exec(delete(PolicyRuleRecord))
    session.flush()
    now = utcnow()
    session.add_all(PolicyRuleRecord(position=position, mode=rule.mode,
                                     rule=_json(rule, POLICY, position), updated_at=now)
                    for position, rule in enumerate(policy, start=1))
    _record_change(session, POLICY, REPLACED, policy, by)
    session.flush()


def restore_file_policy(session: Session, *, by: str) -> None:
    """Drop the stored policy: the rules file's policy is in force again."""
    session.exec(delete(PolicyRuleRecord))
    _record_change(session, POLICY, RESTORED, (), by)
    session.flush()


def stored_by(session: Session, owner: str) -> tuple[datetime, str] | None:
    """When and by whom `owner`'s stored rules were last replaced; None when not stored."""
    marker = session.get(StoredRulesRecord, owner)
    return None if marker is None else (marker.updated_at, marker.updated_by)


def _stored_owners(session: Session) -> set[str]:
    return set(session.exec(select(col(StoredRulesRecord.owner))))


def stored_user_rules(session: Session, rules: RuleSet) -> dict[str, tuple[Rule, ...]]:
    """Every stored user's rules (an empty tuple for "no own rules"), each checked against
    the destinations of `rules`."""
    statement = select(UserRuleRecord).order_by(
        col(UserRuleRecord.user), col(UserRuleRecord.position))
    found: dict[str, list[Rule]] = {owner: [] for owner in _stored_owners(session)
                                    if owner != POLICY}
    problems: list[str] = []
    for record in session.exec(statement):
        where = f"{SOURCE}:{record.user}#{record.position}"
        try:
            found.setdefault(record.user, []).append(
                _rule(record.rule, record.mode, record.user, record.position, rules, where))
        except RulesError as exc:
            problems += exc.problems
    if problems:
        raise RulesError(problems)
    return {user: tuple(user_rules) for user, user_rules in found.items()}


def stored_policy(session: Session, rules: RuleSet) -> tuple[Rule, ...] | None:
    """The stored organisation policy, checked against the destinations of `rules`; None
    when none is stored (the file's policy is in force)."""
    if session.get(StoredRulesRecord, POLICY) is None:
        return None
    policy: list[Rule] = []
    problems: list[str] = []
    for record in session.exec(select(PolicyRuleRecord).order_by(
            col(PolicyRuleRecord.position))):
        where = f"{SOURCE}:{POLICY}#{record.position}"
        try:
            policy.append(_rule(record.rule, record.mode, POLICY, record.position, rules,
                                where))
        except RulesError as exc:
            problems += exc.problems
    if problems:
        raise RulesError(problems)
    return tuple(policy)


def with_policy(rules: RuleSet, policy: Sequence[Rule], source: str = SOURCE) -> RuleSet:
    """`rules` with `policy` in place of its policy, checked as a whole like a rules file
    (names, destinations, conflicts within the policy and with every user's rules)."""
    problems = [f"{source}: rule '{rule.name}': unknown destination '{rule.to}'"
                for rule in policy if rule.posts and rule.to not in rules.destinations]
    # Problems are located in the new policy (`source`), not at a line of the rules file.
    users = {user: tuple(replace(rule, line=0) for rule in user_rules)
             for user, user_rules in rules.users.items()}
    merged = RuleSet(rules.internal_domains, rules.destinations, tuple(policy), users)
    try:
        with_user_rules(merged, {}, source)
    except RulesError as exc:
        problems += exc.problems
    if problems:
        raise RulesError(problems)
    return RuleSet(rules.internal_domains, rules.destinations, tuple(policy), rules.users)


def policy_in_force(session: Session, file_rules: RuleSet) -> RuleSet:
    """`file_rules` with the stored policy in place of the file's, if one is stored (users'
    rules as in the file); RulesError when a stored policy rule no longer fits."""
    policy = stored_policy(session, file_rules)
    if policy is None:
        return file_rules
    return RuleSet(file_rules.internal_domains, file_rules.destinations, policy,
                   file_rules.users)


def load_stored_rules(session: Session, file_rules: RuleSet) -> RuleSet:
    """The rules in force: the file's, with the stored policy in place of its policy (if
    one is stored) and each stored user's rules in place of that user's; RulesError when
    a stored rule no longer fits (unknown destination, conflict)."""
    users: Mapping[str, tuple[Rule, ...]] = stored_user_rules(session, file_rules)
    return with_user_rules(policy_in_force(session, file_rules), users, SOURCE)


def stored_rules_version(session: Session) -> tuple[object, ...]:
    """Changes whenever stored rules (users' or policy) are saved: a running gateway
    compares it to decide whether to reload."""
    connection = session.connection()

    def stats(*columns: Any) -> tuple[object, ...]:
        return tuple(connection.execute(select_columns(*columns)).one())

    return (*stats(func.count(), func.max(col(UserRuleRecord.updated_at)),
                   func.max(col(UserRuleRecord.id))),
            *stats(func.count(), func.max(col(PolicyRuleRecord.updated_at)),
                   func.max(col(PolicyRuleRecord.id))),
            *stats(func.count(), func.max(col(StoredRulesRecord.updated_at))),
            *stats(func.max(col(RulesChangeRecord.id))))


def recent_changes(session: Session, limit: int = 20) -> list[RulesChange]:
    """The last `limit` changes of stored rules, newest first."""
    changes = []
    for record in session.exec(select(RulesChangeRecord).order_by(
            col(RulesChangeRecord.id).desc()).limit(limit)):
        try:
            data = json.loads(record.rules)
        except ValueError:
            data = []
        names = tuple(str(item.get("name", f"{record.owner}#{position}"))
                      for position, item in enumerate(data, start=1) if isinstance(item, dict))
        changes.append(RulesChange(record.at, record.by, record.owner, record.change,
                                   record.rule_count, names))
    return changes


def _rule(text: str, mode: str, owner: str, position: int, rules: RuleSet,
          where: str) -> Rule:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RulesError([f"{where}: stored rule is not JSON: {exc}"]) from exc
    if not isinstance(data, dict):
        raise RulesError([f"{where}: stored rule is not a JSON object"])
    data["mode"] = mode
    return rule_from_data(data, owner, position, rules.destinations, where)
