"""The rules file: the issue's example loads; every mistake is named with its line."""

from __future__ import annotations

import re
from pathlib import Path
from types import MappingProxyType

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.core.decision import AUDIT, DELIVER, DIGEST, DIVERT, ENFORCE
from sluice.core.errors import ConfigError
from sluice.router.rules import DestinationSpec, Match, Rule, RuleSet
from sluice.router.rulesfile import (
    RulesError,
    audit_warnings,
    find_conflicts,
    load_rules,
    parse_rules,
    rule_from_data,
    rule_to_data,
    with_user_rules,
)
from tests.router.helpers import ISSUE_EXAMPLE


def problems_of(text: str) -> list[str]:
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "rules.yaml")
    return caught.value.problems


def test_issue_example_loads() -> None:
    rules = load_rules(ISSUE_EXAMPLE)
    assert rules.internal_domains == frozenset({"example.com"})
    assert {name: (d.kind, dict(d.options)) for name, d in rules.destinations.items()} == {
        "offering-updates": ("space", {"channel": "offering-updates"}),
        "sales-chat": ("webhook", {"url": "http://127.0.0.1:9000/hook"}),
        "team-slack": ("apprise", {"url": "slack://TokenA/TokenB/TokenC/#sales"}),
    }
    assert rules.policy == (
        Rule("policy#1", Match(category="automated"), DELIVER, line=8),
        Rule("policy#2", Match(category="broadcast", min_recipients=10), DIVERT,
             "offering-updates", AUDIT, line=9),
    )
    alice = rules.rules_for("Alice@Example.com")
    assert [(r.name, r.action, r.to, r.mode, r.line) for r in alice] == [
        ("alice@example.com#1", DIVERT, "offering-updates", ENFORCE, 12),
        ("alice@example.com#2", DIGEST, "offering-updates", ENFORCE, 13),
    ]
    assert alice[0].match == Match(category="broadcast", min_confidence=0.7)
    assert alice[1].match.subject == re.compile(r"^\[FYI\]")
    (bob,) = rules.rules_for("bob@example.com")
    assert bob.match == Match(sender_domain="partner.example", has_attachment=True)
    assert (bob.name, bob.to) == ("bob@example.com#1", "sales-chat")
    # Bob's rule and the audit policy entry would conflict once that entry is enforced.
    (warning,) = audit_warnings(rules, "rules.yaml")
    assert warning.startswith("rules.yaml:15: once audit rules are enforced: rules "
                              "'bob@example.com#1' (line 15) and 'policy#2' (line 9)")


def test_values_are_read_only() -> None:
    rules = load_rules(ISSUE_EXAMPLE)
    assert isinstance(rules.destinations, MappingProxyType)
    assert isinstance(rules.users, MappingProxyType)
    assert isinstance(rules.destinations["sales-chat"].options, MappingProxyType)
    with pytest.raises(TypeError):
        rules.destinations["sales-chat"].options["url"] = "http://evil"  # type: ignore[index]
    hash(rules)  # frozen values stay hashable despite their mappings


HEAD = """\
internal_domains: [example.com]
destinations:
  updates: {kind: space}
  hook: {kind: webhook, url: "https://hooks.example.net/x"}
"""  # lines 1-4; whatever a case adds starts on line 5


@pytest.mark.parametrize(("body", "expected"), [
    ("policy:\n  - {match: {catgory: broadcast}, action: deliver}\n",
     "rules.yaml:6: unknown match key 'catgory' (known: category, "),
    ("policy:\n  - {match: {category: broadcast}, action: divret, to: updates}\n",
     "rules.yaml:6: unknown action 'divret' (known: deliver, divert, digest, copy)"),
    ("policy:\n  - match: {category: broadcast}\n    action: divert\n",
     "rules.yaml:6: divert needs 'to': the destination to post to"),
    ("policy:\n  - {match: {category: broadcast}, action: copy, to: slack}\n",
     "rules.yaml:6: unknown destination 'slack' (known: updates, hook)"),
    ("policy:\n  - {match: {subject: '[unclosed'}, action: deliver}\n",
     "rules.yaml:6: bad regular expression '[unclosed' in subject: unterminated character set"),
    ("policy:\n  - {match: {category: newsletter}, action: deliver}\n",
     "rules.yaml:6: unknown category 'newsletter' (known: automated, event, feedback, "),
    ("policy:\n  - {match: {category: broadcast, min_confidence: 1.5}, action: deliver}\n",
     "rules.yaml:6: min_confidence must be a number from 0 to 1, not 1.5"),
    ("policy:\n  - {match: {min_confidence: 0.5}, action: deliver}\n",
     "rules.yaml:6: min_confidence needs a category"),
    ("  chat: {kind: irc, channel: x}\n",
     "rules.yaml:5: unknown destination kind 'irc' (known: space, webhook, apprise)"),
    ("  chat: {channel: x}\n", "rules.yaml:5: destination 'chat' has no kind"),
    ("  chat: {kind: webhook}\n", "rules.yaml:5: destination 'chat': a webhook destination "
     "needs 'url'"),
    ("  chat: {kind: webhook, url: 'ftp://x'}\n",
     "rules.yaml:5: destination 'chat': webhook url must start with http:// or https://"),
    ("  chat: {kind: space, chanel: x}\n",
     "rules.yaml:5: destination 'chat': unknown space option 'chanel'"),
    ("users:\n  alice.example.com:\n    - {match: {}, action: deliver}\n",
     "rules.yaml:6: user key 'alice.example.com' is not an address (name@domain)"),
    ("users:\n  alice@other.org: []\n",
     "rules.yaml:6: user alice@other.org is not in internal_domains"),
    ("policy:\n  - {match: {category: broadcast}, action: deliver, to: updates}\n",
     "rules.yaml:6: deliver keeps the mail in the inbox; it takes no 'to'"),
    ("policy:\n  - {match: {category: direct}, action: divert, to: updates}\n",
     "rules.yaml:6: the policy never diverts direct mail"),
    ("policy:\n  - {match: {has_attachment: maybe}, action: deliver}\n",
     "rules.yaml:6: has_attachment must be true or false, not 'maybe'"),
    ("policy:\n  - {match: {min_recipients: 0}, action: deliver}\n",
     "rules.yaml:6: min_recipients must be a whole number of at least 1, not 0"),
    ("policy:\n  - {match: {sender: someone}, action: deliver}\n",
     "rules.yaml:6: sender 'someone' is not an address"),
    ("policy:\n  - {match: {sender_domain: '@partner.example'}, action: deliver}\n",
     "rules.yaml:6: sender_domain '@partner.example' is not a domain"),
    ("policy:\n  - {match: {}, action: deliver, mode: dry-run}\n",
     "rules.yaml:6: unknown mode 'dry-run' (known: enforce, audit)"),
    ("policy:\n  - {match: {}, action: deliver, too: a}\n", "rules.yaml:6: unknown rule key 'too'"),
    ("policy:\n  - {match: {}}\n", "rules.yaml:6: rule policy#1 has no action"),
    ("policy:\n  - deliver\n", "rules.yaml:6: rule policy#1 must be a mapping"),
    ("policy:\n  - {name: external, action: deliver}\n",
     "rules.yaml:6: rule name 'external' is reserved"),
    ("policy:\n  - {name: keep, action: deliver}\n  - {name: keep, action: deliver}\n",
     "rules.yaml:7: rule name 'keep' already used (line 6)"),
    ("policy:\n  - {match: {category: broadcast, category: event}, action: deliver}\n",
     "rules.yaml:6: match: 'category' given twice"),
    ("policies: []\n", "rules.yaml:5: unknown top-level key 'policies'"),
    ("policy:\n  - {match: {category: broadcast}, action: deliver\n",
     "rules.yaml:7: not valid YAML: expected ',' or '}'"),
])
def test_each_problem_names_its_line(body: str, expected: str) -> None:
    problems = problems_of(HEAD + body)  # an indented body adds to `destinations:`
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems[0]


def test_all_problems_are_reported_in_file_order() -> None:
    problems = problems_of(HEAD + "policy:\n"
                           "  - {match: {catgory: x}, action: deliver}\n"
                           "  - {match: {category: broadcast}, action: divert}\n"
                           "  - {match: {subject: '('}, action: deliver}\n")
    assert [p.split(": ")[0] for p in problems] == ["rules.yaml:6", "rules.yaml:7",
                                                    "rules.yaml:8"]


@pytest.mark.parametrize(("text", "expected"), [
    ("", "rules.yaml: the file is empty"),
    ("policy: []\n", "rules.yaml:1: internal_domains is missing"),
    ("internal_domains: [example..com]\n", "rules.yaml:1: 'example..com' is not a domain"),
    ("- just a list\n", "rules.yaml:1: top-level must be a mapping"),
])
def test_file_level_problems(text: str, expected: str) -> None:
    assert problems_of(text)[0].startswith(expected)


def test_rules_error_is_a_config_error_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_rules(tmp_path / "missing.yaml")
    assert isinstance(caught.value, RulesError)
    assert caught.value.problems[0].startswith(f"{tmp_path / 'missing.yaml'}: cannot read")


def test_empty_sections_and_explicit_names() -> None:
    rules = parse_rules("internal_domains: [Example.COM]\ndestinations:\npolicy:\nusers:\n"
                        "  Carol@Example.com:\n"
                        "    - name: carol-keeps-events\n"
                        "      description: I go to every event\n"
                        "      match: {category: event}\n"
                        "      action: deliver\n")
    assert rules.internal_domains == frozenset({"example.com"})
    (rule,) = rules.rules_for("carol@example.com")
    assert (rule.name, rule.description, rule.line) == ("carol-keeps-events",
                                                         "I go to every event", 6)


def test_subject_pattern_keeps_its_spaces() -> None:
    rules = parse_rules(HEAD + "policy:\n  - {match: {subject: ' FYI '}, action: deliver}\n")
    assert rules.policy[0].match.subject == re.compile(" FYI ")


# -- conflicts ---------------------------------------------------------------------------------

CONFLICT_HEAD = """\
internal_domains: [example.com]
destinations:
  a: {kind: space}
  b: {kind: space}
"""


def conflict_problems(body: str) -> list[str]:
    return problems_of(CONFLICT_HEAD + body)


def test_own_rules_sending_one_category_to_two_places_conflict() -> None:
    (problem,) = conflict_problems(
        "users:\n  alice@example.com:\n"
        "    - {match: {category: broadcast}, action: divert, to: a}\n"
        "    - {match: {category: broadcast, min_recipients: 20}, action: digest, to: b}\n")
    assert problem == (
        "rules.yaml:8: rules 'alice@example.com#1' (line 7) and 'alice@example.com#2' (line 8) "
        "send broadcast mail for alice@example.com to two destinations, 'a' and 'b'")


def test_user_rule_against_enforced_policy_points_at_the_user_rule() -> None:
    (problem,) = conflict_problems(
        "policy:\n  - {match: {category: material}, action: divert, to: a}\n"
        "users:\n  alice@example.com:\n"
        "    - {match: {has_attachment: true}, action: copy, to: b}\n")
    assert problem == (
        "rules.yaml:9: rules 'alice@example.com#1' (line 9) and 'policy#1' (line 6) send "
        "material mail for alice@example.com to two destinations, 'b' and 'a'")


def test_policy_conflicts_are_reported_once_for_every_user() -> None:
    problems = conflict_problems(
        "policy:\n  - {name: ads, match: {category: broadcast}, action: divert, to: a}\n"
        "  - {match: {sender_domain: vendor.example}, action: divert, to: b}\n"
        "users:\n  alice@example.com: []\n  bob@example.com: []\n")
    assert problems == [
        "rules.yaml:7: rules 'ads' (line 6) and 'policy#2' (line 7) send broadcast mail for "
        "every user to two destinations, 'a' and 'b'"]


def test_two_rules_without_category_conflict_for_every_category_but_direct() -> None:
    (problem,) = conflict_problems(
        "users:\n  alice@example.com:\n"
        "    - {match: {subject: FYI}, action: divert, to: a}\n"
        "    - {match: {sender_domain: vendor.example}, action: divert, to: b}\n")
    assert "send mail of any category but direct for alice@example.com" in problem


@pytest.mark.parametrize("body", [
    # a user's deliver rule overriding a policy divert: deliver posts nothing
    "policy:\n  - {match: {category: broadcast}, action: divert, to: a}\n"
    "users:\n  alice@example.com:\n    - {match: {category: broadcast}, action: deliver}\n",
    # divert and digest to the same destination: one place
    "users:\n  alice@example.com:\n"
    "    - {match: {category: broadcast}, action: divert, to: a}\n"
    "    - {match: {subject: FYI}, action: digest, to: a}\n",
    # different categories
    "policy:\n  - {match: {category: broadcast}, action: divert, to: a}\n"
    "  - {match: {category: event}, action: divert, to: b}\n",
    # different senders, unrelated sender domains, attachment required vs excluded
    "users:\n  bob@example.com:\n"
    "    - {match: {sender_domain: partner.example}, action: divert, to: a}\n"
    "    - {match: {sender_domain: supplier.example}, action: divert, to: b}\n"
    "    - {match: {sender: ceo@other.example}, action: divert, to: a}\n"
    "    - {match: {sender: cfo@other.example}, action: divert, to: b}\n",
    "users:\n  bob@example.com:\n"
    "    - {match: {has_attachment: true}, action: divert, to: a}\n"
    "    - {match: {has_attachment: false}, action: divert, to: b}\n",
    # a user's explicit direct rule: the policy never posts direct mail
    "policy:\n  - {match: {sender_domain: vendor.example}, action: divert, to: a}\n"
    "users:\n  alice@example.com:\n    - {match: {category: direct}, action: divert, to: b}\n",
    # audit rules move no mail: a warning from `rules check`, not an error
    "policy:\n  - {match: {category: broadcast}, action: divert, to: a, mode: audit}\n"
    "  - {match: {category: broadcast}, action: divert, to: b}\n",
    # two users may each choose their own place
    "users:\n  alice@example.com:\n    - {match: {category: event}, action: divert, to: a}\n"
    "  bob@example.com:\n    - {match: {category: event}, action: divert, to: b}\n",
])
def test_not_conflicts(body: str) -> None:
    parse_rules(CONFLICT_HEAD + body, "rules.yaml")


@pytest.mark.parametrize(("one", "other"), [
    ("{sender_domain: partner.example}", "{sender_domain: mail.partner.example}"),
    ("{sender: ann@partner.example}", "{sender_domain: partner.example}"),
    ("{sender_domain: partner.example}", "{sender: ann@eu.partner.example}"),
    ("{sender: ann@partner.example}", "{sender: ann@partner.example, has_attachment: true}"),
    ("{recipient: all@example.com}", "{recipient: sales@example.com}"),
])
def test_overlapping_matches_conflict(one: str, other: str) -> None:
    problems = conflict_problems(
        "users:\n  bob@example.com:\n"
        f"    - {{match: {one}, action: divert, to: a}}\n"
        f"    - {{match: {other}, action: divert, to: b}}\n")
    assert len(problems) == 1 and "'bob@example.com#1' (line 7) and 'bob@example.com#2'" \
        in problems[0]


def test_audit_conflicts_are_found_when_asked() -> None:
    rules = parse_rules(CONFLICT_HEAD + "policy:\n"
                        "  - {match: {category: broadcast}, action: divert, to: a, mode: audit}\n"
                        "  - {match: {category: broadcast}, action: divert, to: b}\n")
    assert find_conflicts(rules) == []
    (conflict,) = find_conflicts(rules, include_audit=True)
    assert (conflict.first.name, conflict.second.name, conflict.at.name) == (
        "policy#1", "policy#2", "policy#2")


# -- rules as data (the database's format) -----------------------------------------------------


def test_rule_data_round_trip_uses_the_same_checks() -> None:
    rules = load_rules(ISSUE_EXAMPLE)
    for rule in rules.all_rules():
        data = {**rule_to_data(rule), "mode": rule.mode}
        again = rule_from_data(data, "x@example.com", 1, rules.destinations, "db")
        assert again == Rule(rule.name, rule.match, rule.action, rule.to, rule.mode,
                             rule.description, line=0)
    with pytest.raises(RulesError) as caught:
        rule_from_data({"match": {"catgory": "x"}, "action": "divert", "to": "nowhere"},
                       "x@example.com", 3, rules.destinations, "database:x@example.com#3")
    assert caught.value.problems == [
        "database:x@example.com#3: unknown match key 'catgory' (known: category, min_confidence,"
        " sender, sender_domain, recipient, subject, has_attachment, min_recipients)",
        "database:x@example.com#3: unknown destination 'nowhere' (known: offering-updates, "
        "sales-chat, team-slack)",
    ]


def test_with_user_rules_checks_the_whole_set() -> None:
    rules = load_rules(ISSUE_EXAMPLE)
    enforced = RuleSet(rules.internal_domains, rules.destinations,
                       (Rule("ads", Match(category="broadcast"), DIVERT, "offering-updates"),))
    clash = Rule("mine", Match(category="broadcast"), DIVERT, "team-slack")
    with pytest.raises(RulesError) as caught:
        with_user_rules(enforced, {"carol@example.com": [clash]})
    assert caught.value.problems == [
        "database: rules 'mine' and 'ads' send broadcast mail for carol@example.com to two "
        "destinations, 'team-slack' and 'offering-updates'"]
    with pytest.raises(RulesError, match="unknown destination 'gone'"):
        with_user_rules(rules, {"carol@example.com": [
            Rule("r", Match(), DIVERT, "gone")]})
    with pytest.raises(RulesError, match="not an address in internal_domains"):
        with_user_rules(rules, {"carol@other.org": []})
    merged = with_user_rules(rules, {"Carol@example.com": [Rule("r", Match(), DELIVER)]})
    assert merged.rules_for("carol@example.com")[0].name == "r"
    assert merged.rules_for("alice@example.com") == rules.rules_for("alice@example.com")


def test_destination_spec_options_are_copied() -> None:
    options = {"channel": "x"}
    spec = DestinationSpec("d", "space", options)
    options["channel"] = "changed"
    assert spec.options["channel"] == "x"


# -- fuzzing: whatever the file holds, the answer is a RuleSet or a RulesError -----------------

_words = st.sampled_from((
    "internal_domains", "destinations", "policy", "users", "match", "action", "to", "mode",
    "kind", "url", "channel", "category", "broadcast", "direct", "divert", "deliver", "copy",
    "digest", "audit", "space", "webhook", "a", "alice@example.com", "example.com",
    "min_confidence", "min_recipients", "has_attachment", "subject", "sender_domain", "(", "",
))
_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 30) | st.floats(allow_nan=True) | _words,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_words, inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(data=st.dictionaries(_words, _values, max_size=5))
def test_structured_nonsense_gives_rules_error_not_a_crash(data: dict[str, object]) -> None:
    try:
        parse_rules(yaml.safe_dump(data), "fuzz.yaml")
    except RulesError as exc:
        assert exc.problems and all(p.startswith("fuzz.yaml") for p in exc.problems)


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("abc:-[]{}#!&*'\"\n @.\\|>%,")),
                    max_size=80))
def test_text_nonsense_gives_rules_error_not_a_crash(text: str) -> None:
    try:
        parse_rules(text, "fuzz.yaml")
    except RulesError as exc:
        assert exc.problems


def test_rule_names_are_unique_per_user_not_across_users() -> None:
    parse_rules(CONFLICT_HEAD + "users:\n"
                "  alice@example.com: [{name: news, match: {category: event}, action: deliver}]\n"
                "  bob@example.com: [{name: news, match: {category: event}, action: deliver}]\n")
    (problem,) = problems_of(
        CONFLICT_HEAD + "policy:\n  - {name: news, action: deliver}\n"
        "users:\n  alice@example.com:\n    - {name: news, action: deliver}\n")
    assert problem == "rules.yaml:9: rule name 'news' already used (line 6)"
