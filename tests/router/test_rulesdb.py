"""Users' rules in the database: stored, read back through the file's checks, per user."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from sluice.core.db import init_schema, make_engine
from sluice.core.decision import AUDIT, DELIVER, DIVERT
from sluice.core.settings import load_settings
from sluice.core.tables import UserRuleRecord
from sluice.router.rules import Match, Rule, RuleSet
from sluice.router.rulesdb import (
    load_stored_rules,
    save_ruleset_users,
    save_user_rules,
    stored_user_rules,
)
from sluice.router.rulesfile import RulesError, load_rules
from tests.router.helpers import ISSUE_EXAMPLE


@pytest.fixture()
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(load_settings(None, data_dir=tmp_path))
    init_schema(engine)
    return engine


def without_users(rules: RuleSet) -> RuleSet:
    return RuleSet(rules.internal_domains, rules.destinations, rules.policy)


def unlined(rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
    return tuple(replace(rule, line=0) for rule in rules)


def test_round_trip_of_a_rulesets_users(engine: Engine) -> None:
    rules = load_rules(ISSUE_EXAMPLE)
    with Session(engine) as session:
        save_ruleset_users(session, rules)
        session.commit()
    with Session(engine) as session:
        loaded = load_stored_rules(session, without_users(rules))
        rows = session.exec(select(UserRuleRecord).order_by(col(UserRuleRecord.id))).all()
    assert set(loaded.users) == {"alice@example.com", "bob@example.com"}
    for user in loaded.users:
        assert loaded.users[user] == unlined(rules.users[user])
    assert loaded.policy == rules.policy
    assert [(r.user, r.position, r.mode) for r in rows] == [
        ("alice@example.com", 1, "enforce"), ("alice@example.com", 2, "enforce"),
        ("bob@example.com", 1, "enforce")]
    # Generated names are not stored, so they follow the rule when it moves.
    assert json.loads(rows[1].rule) == {
        "match": {"subject": r"^\[FYI\]"}, "action": "digest", "to": "offering-updates"}


def test_save_one_user_replaces_only_theirs_and_renames_generated(engine: Engine) -> None:
    rules = load_rules(ISSUE_EXAMPLE)
    with Session(engine) as session:
        save_ruleset_users(session, rules)
        alice = rules.rules_for("alice@example.com")
        named = Rule("keep-events", Match(category="event"), DELIVER, mode=AUDIT,
                     description="I like events")
        save_user_rules(session, "Alice@Example.com", [named, alice[1]])
        session.commit()
    with Session(engine) as session:
        stored = stored_user_rules(session, rules)
    assert stored["alice@example.com"] == (
        named, replace(alice[1], name="alice@example.com#2", line=0))
    assert stored["bob@example.com"] == unlined(rules.rules_for("bob@example.com"))


def test_stored_rules_that_no_longer_fit_are_refused(engine: Engine) -> None:
    rules = load_rules(ISSUE_EXAMPLE)
    with Session(engine) as session:
        save_user_rules(session, "carol@example.com", [
            Rule("to-slack", Match(category="event"), DIVERT, "team-slack")])
        session.add(UserRuleRecord(user="carol@example.com", position=2, rule="{not json"))
        session.commit()
    smaller = RuleSet(rules.internal_domains,
                      {k: v for k, v in rules.destinations.items() if k != "team-slack"})
    with Session(engine) as session, pytest.raises(RulesError) as caught:
        load_stored_rules(session, smaller)
    assert [p.split(": ")[0] for p in caught.value.problems] == [
        "database:carol@example.com#1", "database:carol@example.com#2"]
    assert "unknown destination 'team-slack'" in caught.value.problems[0]
    assert "stored rule is not JSON" in caught.value.problems[1]


def test_stored_rules_conflicting_with_the_policy_are_refused(engine: Engine) -> None:
    rules = load_rules(ISSUE_EXAMPLE)
    enforced = RuleSet(rules.internal_domains, rules.destinations, (
        Rule("events", Match(category="event"), DIVERT, "offering-updates"),))
    with Session(engine) as session:
        save_user_rules(session, "carol@example.com", [
            Rule("mine", Match(sender_domain="partner.example"), DIVERT, "team-slack")])
        session.commit()
        with pytest.raises(RulesError, match="rules 'mine' and 'events' send event mail"):
            load_stored_rules(session, enforced)
