"""The organisation policy in the database, emptied rule lists, the audit trail and the
export as a rules file: stored rules in place of the file's, read back through its checks."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from sluice.core.db import init_schema, make_engine
from sluice.core.decision import AUDIT, DELIVER, DIVERT
from sluice.core.settings import load_settings
from sluice.core.tables import PolicyRuleRecord
from sluice.router.decide import decide
from sluice.router.rules import POLICY, Match, Rule, RuleSet
from sluice.router.rulesdb import (
    REPLACED,
    RESTORED,
    load_stored_rules,
    policy_in_force,
    recent_changes,
    restore_file_policy,
    save_policy,
    save_user_rules,
    stored_by,
    stored_policy,
    stored_rules_version,
    stored_user_rules,
    with_policy,
)
from sluice.router.rulesexport import ruleset_yaml
from sluice.router.rulesfile import RulesError, load_rules, parse_rules
from tests.router.helpers import ISSUE_EXAMPLE, message, verdict

ALICE, BOB = "alice@example.com", "bob@example.com"


@pytest.fixture()
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(load_settings(None, data_dir=tmp_path))
    init_schema(engine)
    return engine


def unlined(rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
    return tuple(replace(rule, line=0) for rule in rules)


def _policy() -> tuple[Rule, ...]:
    return (Rule("big-broadcasts", Match(category="broadcast", min_recipients=5,
                                         has_attachment=False), DIVERT,
                 "offering-updates", description="cc-to-all mail"),
            Rule(f"{POLICY}#2", Match(sender_domain="partner.example"), DIVERT, "sales-chat",
                 mode=AUDIT))


def _store_policy(engine: Engine, policy: tuple[Rule, ...], by: str = "root@example.com"
                  ) -> None:
    with Session(engine) as session:
        save_policy(session, policy, by=by)
        session.commit()


def _in_force(engine: Engine, file: RuleSet) -> RuleSet:
    with Session(engine) as session:
        return load_stored_rules(session, file)


def test_without_stored_rules_the_file_is_in_force(engine: Engine) -> None:
    file = load_rules(ISSUE_EXAMPLE)
    rules = _in_force(engine, file)
    assert rules.policy == file.policy and dict(rules.users) == dict(file.users)
    with Session(engine) as session:
        assert stored_policy(session, file) is None
        assert stored_by(session, POLICY) is None


def test_a_stored_policy_replaces_the_files_and_keeps_users_and_destinations(
        engine: Engine) -> None:
    file = load_rules(ISSUE_EXAMPLE)
    _store_policy(engine, _policy())
    rules = _in_force(engine, file)
    assert rules.policy == _policy()
    assert dict(rules.users) == dict(file.users)
    assert rules.destinations == file.destinations
    assert rules.internal_domains == file.internal_domains
    with Session(engine) as session:
        when_by = stored_by(session, POLICY)
        rows = session.get(PolicyRuleRecord, 2)
    assert when_by is not None and when_by[1] == "root@example.com"
    assert rows is not None and rows.mode == AUDIT and '"name"' not in rows.rule  # generated
    # The gateway's decide now takes the stored policy's rule for bob (no own rule matches).
    mail = message(to=(*(f"p{i}@example.com" for i in range(4)), BOB))
    action = decide(mail, verdict("broadcast"), rules).actions[-1]
    assert (action.rule, action.destination) == ("big-broadcasts", "offering-updates")


def test_an_empty_stored_policy_is_no_policy_not_the_files(engine: Engine) -> None:
    file = load_rules(ISSUE_EXAMPLE)
    _store_policy(engine, ())
    assert _in_force(engine, file).policy == ()
    with Session(engine) as session:
        restore_file_policy(session, by="root@example.com")
        session.commit()
    assert _in_force(engine, file).policy == file.policy


def test_a_user_who_saves_no_rules_keeps_none_of_the_files(engine: Engine) -> None:
    file = load_rules(ISSUE_EXAMPLE)
    assert file.rules_for(ALICE)  # the file gives alice rules ...
    with Session(engine) as session:
        save_user_rules(session, ALICE, [], by=ALICE)
        session.commit()
    with Session(engine) as session:
        assert stored_user_rules(session, file) == {ALICE: ()}
    rules = _in_force(engine, file)
    assert rules.rules_for(ALICE) == ()  # ... and they stay out once she emptied her list
    assert rules.rules_for(BOB) == file.rules_for(BOB)
    mail = message(to=(*(f"p{i}@example.com" for i in range(12)), ALICE))
    assert decide(mail, verdict("broadcast"), rules).actions[-1].rule == f"{POLICY}#2"


def test_saving_again_after_emptying_stores_the_new_rules(engine: Engine) -> None:
    file = load_rules(ISSUE_EXAMPLE)
    mine = Rule("keep-events", Match(category="event"), DELIVER)
    with Session(engine) as session:
        save_user_rules(session, ALICE, [], by=ALICE)
        session.commit()
        save_user_rules(session, ALICE, [mine], by=ALICE)
        session.commit()
    assert _in_force(engine, file).rules_for(ALICE) == (mine,)


def test_stored_policy_that_no_longer_fits_the_file_is_refused(engine: Engine) -> None:
    file = load_rules(ISSUE_EXAMPLE)
    _store_policy(engine, _policy())
    smaller = RuleSet(file.internal_domains,
                      {k: v for k, v in file.destinations.items() if k != "sales-chat"},
                      file.policy, {})
    with pytest.raises(RulesError) as caught:
        _in_force(engine, smaller)
    assert caught.value.problems == [
        "database:policy#2: unknown destination 'sales-chat' (known: offering-updates, "
        "team-slack)"]


def test_new_policy_conflicting_with_a_users_rule_names_both(engine: Engine) -> None:
    file = load_rules(ISSUE_EXAMPLE)
    clash = Rule("broadcasts-to-chat", Match(category="broadcast"), DIVERT, "team-slack")
    with pytest.raises(RulesError) as caught:
        with_policy(file, (clash,), "policy")
    assert caught.value.problems[0] == (
        "policy: rules 'alice@example.com#1' and 'broadcasts-to-chat' send "
        "broadcast mail for alice@example.com to two destinations, 'offering-updates' and "
        "'team-slack'")
    assert any("'bob@example.com#1'" in p for p in caught.value.problems)


def test_policy_rules_conflicting_with_each_other_name_both(engine: Engine) -> None:
    file = RuleSet(load_rules(ISSUE_EXAMPLE).internal_domains,
                   load_rules(ISSUE_EXAMPLE).destinations)
    first = Rule("a", Match(category="broadcast"), DIVERT, "team-slack")
    second = Rule("b", Match(category="broadcast", min_recipients=3), DIVERT, "sales-chat")
    with pytest.raises(RulesError) as caught:
        with_policy(file, (first, second), "policy")
    assert caught.value.problems == [
        "policy: rules 'a' and 'b' send broadcast mail for every user to two destinations, "
        "'team-slack' and 'sales-chat'"]


def test_policy_of_the_database_is_what_users_rules_are_checked_against(
        engine: Engine) -> None:
    file = load_rules(ISSUE_EXAMPLE)
    _store_policy(engine, (Rule("all-partner", Match(sender_domain="partner.example"), DIVERT,
                                "team-slack"),))
    with Session(engine) as session:
        in_force = policy_in_force(session, RuleSet(file.internal_domains, file.destinations,
                                                     file.policy))
    assert [r.name for r in in_force.policy] == ["all-partner"]
    # bob's file rule sends partner mail with attachments to sales-chat: now a conflict.
    with pytest.raises(RulesError) as caught:
        _in_force(engine, file)
    assert any("'bob@example.com#1'" in p and "'all-partner'" in p
               for p in caught.value.problems)


def test_the_version_changes_with_every_save(engine: Engine) -> None:
    versions = []
    with Session(engine) as session:
        versions.append(stored_rules_version(session))
        save_policy(session, _policy(), by="root@example.com")
        session.commit()
        versions.append(stored_rules_version(session))
        save_user_rules(session, ALICE, [], by=ALICE)
        session.commit()
        versions.append(stored_rules_version(session))
        save_policy(session, _policy(), by="root@example.com")  # the same list again
        session.commit()
        versions.append(stored_rules_version(session))
        restore_file_policy(session, by="root@example.com")
        session.commit()
        versions.append(stored_rules_version(session))
    assert len(set(versions)) == len(versions)


def test_audit_trail_says_who_changed_whose_rules(engine: Engine) -> None:
    with Session(engine) as session:
        save_policy(session, _policy(), by="root@example.com")
        save_user_rules(session, "Alice@Example.com", [], by=ALICE)
        restore_file_policy(session, by="boss@example.com")
        session.commit()
        changes = recent_changes(session, limit=10)
        assert len(recent_changes(session, limit=2)) == 2
    assert [(c.owner, c.by, c.change, c.rule_count, c.names) for c in changes] == [
        (POLICY, "boss@example.com", RESTORED, 0, ()),
        (ALICE, ALICE, REPLACED, 0, ()),
        (POLICY, "root@example.com", REPLACED, 2, ("big-broadcasts", "policy#2")),
    ]
    assert changes[0].at >= changes[2].at


def test_export_reads_back_as_the_same_rules(engine: Engine, tmp_path: Path) -> None:
    file = load_rules(ISSUE_EXAMPLE)
    _store_policy(engine, _policy())
    with Session(engine) as session:
        save_user_rules(session, ALICE, [], by=ALICE)
        save_user_rules(session, "carol@example.com", [
            Rule("fyi", Match(subject=re.compile(r"^\[FYI\] ")), DIVERT,
                 "offering-updates", mode=AUDIT)], by="carol@example.com")
        session.commit()
    rules = _in_force(engine, file)
    text = ruleset_yaml(rules, "exported for a test")
    assert text.startswith("# exported for a test\n")
    again = parse_rules(text, "export")
    assert again.internal_domains == rules.internal_domains
    assert again.destinations == rules.destinations
    assert unlined(again.policy) == rules.policy
    assert {u: unlined(r) for u, r in again.users.items()} == {
        u: unlined(r) for u, r in rules.users.items()}
    assert again.rules_for(ALICE) == ()
    exported = tmp_path / "exported.yaml"
    exported.write_text(text)
    check = subprocess.run([sys.executable, "-m", "sluice.cli", "rules", "check",
                            str(exported)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "OK (2 policy rules, 3 users, 3 destinations)" in check.stdout


def test_cli_export_prints_the_rules_in_force(engine: Engine, tmp_path: Path) -> None:
    _store_policy(engine, _policy())
    url = str(engine.url)
    export = subprocess.run([sys.executable, "-m", "sluice.cli", "rules", "export",
                             "--rules", str(ISSUE_EXAMPLE), "--database-url", url],
                            capture_output=True, text=True, check=False)
    assert export.returncode == 0, export.stderr
    assert unlined(parse_rules(export.stdout).policy) == _policy()
    missing = subprocess.run([sys.executable, "-m", "sluice.cli", "rules", "export",
                              "--database-url", url], capture_output=True, text=True,
                             check=False, env={"PATH": "", "HOME": str(tmp_path)})
    assert missing.returncode == 2 and "no rules file" in missing.stderr
