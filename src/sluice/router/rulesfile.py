"""The rules file: YAML administrators keep in git, read into a validated RuleSet.

The YAML is walked as a node tree (yaml.compose) rather than loaded into dicts, so every
problem names the line it is on; all problems are collected, not just the first. Rules stored
in the database go through the same checks (`rule_from_data`, `with_user_rules`).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import yaml

from sluice.core.decision import ACTIONS, DELIVER, ENFORCE, MODES
from sluice.core.errors import ConfigError
from sluice.core.verdict import CATEGORIES
from sluice.router.decide import DIRECT, EXTERNAL, SLUICE_GENERATED
from sluice.router.rules import (
    APPRISE,
    DESTINATION_KINDS,
    POLICY,
    SPACE,
    WEBHOOK,
    DestinationSpec,
    Match,
    Rule,
    RuleSet,
)

#: Options each destination kind accepts, with their type; the destination code reads them.
#: A space's `channel` defaults to the destination's name.
DESTINATION_OPTIONS: Mapping[str, Mapping[str, type]] = {
    SPACE: {"channel": str, "notify_sender": bool},
    WEBHOOK: {"url": str, "secret": str, "notify_sender": bool},
    APPRISE: {"url": str, "notify_sender": bool},
}
REQUIRED_OPTIONS: Mapping[str, tuple[str, ...]] = {SPACE: (), WEBHOOK: ("url",), APPRISE: ("url",)}

_TOP_KEYS = ("internal_domains", "destinations", "policy", "users")
_RULE_KEYS = ("name", "description", "match", "action", "to", "mode")
_MATCH_KEYS = ("category", "min_confidence", "sender", "sender_domain", "recipient", "subject",
               "has_attachment", "min_recipients")
_RESERVED_NAMES = ("", EXTERNAL, SLUICE_GENERATED)
#: Categories a rule without `category` can post: all but direct (see decide).
_UNNAMED = frozenset(CATEGORIES) - {DIRECT}

_DOMAIN = re.compile(r"[^\s@.]+(?:\.[^\s@.]+)*")
_ADDRESS = re.compile(r"[^\s@]+@" + _DOMAIN.pattern)
_DEST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_STR = "tag:yaml.org,2002:str"
_UNREADABLE = object()


class RulesError(ConfigError):
    """A rules file (or stored rules) that cannot be used; one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def is_address(value: str) -> bool:
    return _ADDRESS.fullmatch(value) is not None


def is_domain(value: str) -> bool:
    return _DOMAIN.fullmatch(value) is not None


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


class _Reader:
    """Turns YAML nodes into values, collecting a problem for everything that is wrong."""

    def __init__(self, source: str, *, lines: bool = True) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[str] = []
        self.destinations: dict[str, DestinationSpec] = {}
        self._constructor = yaml.SafeLoader("")

    def problem(self, node: yaml.Node | None, reason: str) -> None:
        if node is None or not self.lines:
            self.problems.append(f"{self.source}: {reason}")
        else:
            self.problems.append(f"{self.source}:{node.start_mark.line + 1}: {reason}")

    def value(self, node: yaml.Node) -> object:
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:  # e.g. an unknown !tag
            self.problem(node, f"cannot read this value: {getattr(exc, 'problem', exc)}")
            return _UNREADABLE

    def items(self, node: yaml.Node, what: str,
              keys: Sequence[str] | None = None) -> Iterator[tuple[str, yaml.Node, yaml.Node]]:
        """(key, key node, value node) of a mapping; unknown and repeated keys are problems."""
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, f"{what} must be a mapping")
            return
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not (isinstance(key_node, yaml.ScalarNode) and key_node.tag == _STR):
                self.problem(key_node, f"{what}: keys must be text")
                continue
            key = key_node.value
            if key in seen:
                self.problem(key_node, f"{what}: '{key}' given twice")
                continue
            seen.add(key)
            if keys is not None and key not in keys:
                self.problem(key_node, f"unknown {what} key '{key}' (known: {', '.join(keys)})")
                continue
            yield key, key_node, value_node

    def text(self, node: yaml.Node, what: str, *, strip: bool = True) -> str | None:
        if isinstance(node, yaml.ScalarNode) and node.tag == _STR and node.value.strip():
            return str(node.value).strip() if strip else str(node.value)
        self.problem(node, f"{what} must be text")
        return None

    def sequence(self, node: yaml.Node | None, what: str) -> list[yaml.Node]:
        if node is None or _is_null(node):
            return []
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        self.problem(node, f"{what} must be a list")
        return []

    def section(self, node: yaml.Node | None, what: str) -> Iterator[
            tuple[str, yaml.Node, yaml.Node]]:
        """A top-level mapping that may be left empty (`users:` with nothing under it)."""
        if node is None or _is_null(node):
            return iter(())
        return self.items(node, what)

    # -- sections ------------------------------------------------------------------------

    def ruleset(self, root: yaml.Node | None) -> RuleSet:
        if root is None:
            self.problem(None, "the file is empty; it needs at least internal_domains")
            return RuleSet()
        sections = {key: value for key, _, value in self.items(root, "top-level", _TOP_KEYS)}
        domains = self.domains(sections.get("internal_domains"), root)
        for name, key_node, value in self.section(sections.get("destinations"), "destinations"):
            spec = self.destination(name, key_node, value)
            if spec is not None:
                self.destinations[name] = spec
        policy = self.rules(sections.get("policy"), POLICY, "policy")
        users: dict[str, tuple[Rule, ...]] = {}
        for address, key_node, value in self.section(sections.get("users"), "users"):
            user = self.user(address, key_node, domains)
            if user is not None:
                if user in users:
                    self.problem(key_node, f"user {user} given twice")
                users[user] = self.rules(value, user, f"rules of {user}")
        return RuleSet(frozenset(domains), self.destinations, policy, users)

    def domains(self, node: yaml.Node | None, root: yaml.Node) -> set[str]:
        if node is None:
            self.problem(root, "internal_domains is missing: which domains are yours?")
            return set()
        domains: set[str] = set()
        for item in self.sequence(node, "internal_domains"):
            text = self.text(item, "a domain")
            if text is not None and not is_domain(text.lower()):
                self.problem(item, f"'{text}' is not a domain")
            elif text is not None:
                domains.add(text.lower())
        return domains

    def user(self, address: str, node: yaml.Node, domains: set[str]) -> str | None:
        user = address.strip().lower()
        if not is_address(user):
            self.problem(node, f"user key '{address}' is not an address (name@domain)")
            return None
        if user.rpartition("@")[2] not in domains:
            self.problem(node, f"user {user} is not in internal_domains; their rules would "
                         "never apply")
            return None
        return user

    def destination(self, name: str, key_node: yaml.Node,
                    node: yaml.Node) -> DestinationSpec | None:
        if not _DEST_NAME.fullmatch(name):
            self.problem(key_node, f"destination name '{name}' may use only letters, digits, "
                         "'.', '_' and '-'")
            return None
        fields = {key: (key_node, value) for key, key_node, value in
                  self.items(node, f"destination '{name}'")}
        if "kind" not in fields:
            if isinstance(node, yaml.MappingNode):
                self.problem(node, f"destination '{name}' has no kind "
                             f"({', '.join(DESTINATION_KINDS)})")
            return None
        kind_node = fields.pop("kind")[1]
        kind = self.text(kind_node, f"destination '{name}': kind")
        if kind is None:
            return None
        if kind not in DESTINATION_KINDS:
            self.problem(kind_node, f"unknown destination kind '{kind}' "
                         f"(known: {', '.join(DESTINATION_KINDS)})")
            return None
        options = self.options(name, kind, node, fields)
        return None if options is None else DestinationSpec(name, kind, options)

    def options(self, name: str, kind: str, node: yaml.Node,
                fields: dict[str, tuple[yaml.Node, yaml.Node]]) -> dict[str, object] | None:
        known = DESTINATION_OPTIONS[kind]
        options: dict[str, object] = {}
        ok = True
        for key, (key_node, value_node) in fields.items():
            wanted = known.get(key)
            value = self.value(value_node)
            if value is _UNREADABLE:
                ok = False
            elif wanted is None:
                self.problem(key_node, f"destination '{name}': unknown {kind} option '{key}' "
                             f"(known: kind, {', '.join(known)})")
                ok = False
            elif not isinstance(value, wanted) or (wanted is str and not str(value).strip()):
                self.problem(value_node, f"destination '{name}': {key} must be "
                             f"{'true or false' if wanted is bool else 'text'}")
                ok = False
            else:
                options[key] = value
        for key in REQUIRED_OPTIONS[kind]:
            if key not in fields:
                self.problem(node, f"destination '{name}': a {kind} destination needs '{key}'")
                ok = False
        url = options.get("url")
        if kind == WEBHOOK and isinstance(url, str) and not url.startswith(
                ("http://", "https://")):
            self.problem(fields["url"][1], f"destination '{name}': webhook url must start "
                         "with http:// or https://")
            ok = False
        if kind == APPRISE and isinstance(url, str) and "://" not in url:
            self.problem(fields["url"][1], f"destination '{name}': apprise url needs a "
                         "scheme, e.g. slack://…")
            ok = False
        if kind == SPACE:
            options.setdefault("channel", name)
        return options if ok else None

    # -- rules ---------------------------------------------------------------------------

    def rules(self, node: yaml.Node | None, owner: str, what: str) -> tuple[Rule, ...]:
        found = []
        for position, item in enumerate(self.sequence(node, what), start=1):
            rule = self.rule(item, owner, position)
            if rule is not None:
                found.append(rule)
        return tuple(found)

    def rule(self, node: yaml.Node, owner: str, position: int) -> Rule | None:
        """One rule; None (with problems recorded) when anything in it is wrong."""
        generated = f"{owner}#{position}"
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, f"rule {generated} must be a mapping (match, action, to, …)")
            return None
        before = len(self.problems)
        fields = {key: value for key, _, value in
                  self.items(node, "rule", _RULE_KEYS)}
        name = self.text(fields["name"], "name") if "name" in fields else generated
        match = self.match(fields["match"]) if "match" in fields else Match()
        action = self.text(fields["action"], "action") if "action" in fields else None
        if "action" not in fields:
            self.problem(node, f"rule {name} has no action ({', '.join(ACTIONS)})")
        elif action is not None and action not in ACTIONS:
            self.problem(fields["action"], f"unknown action '{action}' "
                         f"(known: {', '.join(ACTIONS)})")
        mode = self.text(fields["mode"], "mode") if "mode" in fields else ENFORCE
        if mode is not None and mode not in MODES:
            self.problem(fields["mode"], f"unknown mode '{mode}' (known: {', '.join(MODES)})")
        to = self.to(node, fields.get("to"), action)
        description = (self.text(fields["description"], "description")
                       if "description" in fields else "")
        if (owner == POLICY and match is not None and match.category == DIRECT
                and action not in (None, DELIVER)):
            self.problem(node, "the policy never diverts direct mail; only a user's own rule "
                         "with category direct can")
        if len(self.problems) > before or None in (name, match, action, mode, to, description):
            return None
        assert name is not None and match is not None and action is not None  # for mypy
        return Rule(name, match, action, to or "", mode or ENFORCE, description or "",
                    line=node.start_mark.line + 1 if self.lines else 0)

    def to(self, node: yaml.Node, to_node: yaml.Node | None, action: str | None) -> str | None:
        if action is None or action not in ACTIONS:
            return ""
        if action == DELIVER:
            if to_node is not None:
                self.problem(to_node, "deliver keeps the mail in the inbox; it takes no 'to'")
            return ""
        if to_node is None:
            self.problem(node, f"{action} needs 'to': the destination to post to")
            return None
        to = self.text(to_node, "to")
        if to is not None and to not in self.destinations:
            known = ", ".join(self.destinations) or "none defined"
            self.problem(to_node, f"unknown destination '{to}' (known: {known})")
            return None
        return to

    def match(self, node: yaml.Node) -> Match | None:
        if _is_null(node):  # `match:` left empty: matches everything, like no match at all
            return Match()
        values: dict[str, object] = {}
        before = len(self.problems)
        for key, _, value_node in self.items(node, "match", _MATCH_KEYS):
            value = getattr(self, f"_match_{key}")(value_node)
            if value is not None:
                values[key] = value
        if "min_confidence" in values and "category" not in values:
            self.problem(node, "min_confidence needs a category: it is the classifier's "
                         "confidence in that category")
        if len(self.problems) > before:
            return None
        return Match(**values)  # type: ignore[arg-type]  # each value checked by its _match_*

    def _match_category(self, node: yaml.Node) -> str | None:
        text = self.text(node, "category")
        if text is not None and text not in CATEGORIES:
            self.problem(node, f"unknown category '{text}' (known: {', '.join(CATEGORIES)})")
            return None
        return text

    def _match_min_confidence(self, node: yaml.Node) -> float | None:
        value = self.value(node)
        if value is _UNREADABLE:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            self.problem(node, f"min_confidence must be a number from 0 to 1, not {value!r}")
            return None
        return float(value)

    def _match_sender(self, node: yaml.Node) -> str | None:
        return self._address(node, "sender")

    def _match_recipient(self, node: yaml.Node) -> str | None:
        return self._address(node, "recipient")

    def _address(self, node: yaml.Node, what: str) -> str | None:
        text = self.text(node, what)
        if text is not None and not is_address(text.lower()):
            self.problem(node, f"{what} '{text}' is not an address (name@domain)")
            return None
        return None if text is None else text.lower()

    def _match_sender_domain(self, node: yaml.Node) -> str | None:
        text = self.text(node, "sender_domain")
        if text is not None and not is_domain(text.lower()):
            self.problem(node, f"sender_domain '{text}' is not a domain (no '@')")
            return None
        return None if text is None else text.lower()

    def _match_subject(self, node: yaml.Node) -> re.Pattern[str] | None:
        text = self.text(node, "subject", strip=False)  # spaces can matter in a pattern
        if text is None:
            return None
        try:
            return re.compile(text)
        except re.error as exc:
            self.problem(node, f"bad regular expression {text!r} in subject: {exc}")
            return None

    def _match_has_attachment(self, node: yaml.Node) -> bool | None:
        value = self.value(node)
        if value is _UNREADABLE:
            return None
        if not isinstance(value, bool):
            self.problem(node, f"has_attachment must be true or false, not {value!r}")
            return None
        return value

    def _match_min_recipients(self, node: yaml.Node) -> int | None:
        value = self.value(node)
        if value is _UNREADABLE:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.problem(node, f"min_recipients must be a whole number of at least 1, "
                         f"not {value!r}")
            return None
        return value


# -- conflicts -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Conflict:
    """Two rules that send the same kind of mail for one user to two destinations.

    `user` is "" when both rules are policy (then it holds for every user). `at` is the rule
    to change: the later of two rules of one owner, or the user's own rule against policy.
    """

    user: str
    first: Rule
    second: Rule
    categories: frozenset[str]
    at: Rule

    def reason(self) -> str:
        kinds = ("mail of any category but direct" if self.categories == _UNNAMED else
                 "/".join(c for c in CATEGORIES if c in self.categories) + " mail")
        who = self.user or "every user"
        return (f"rules '{self.first.name}'{_line(self.first)} and '{self.second.name}'"
                f"{_line(self.second)} send {kinds} for {who} to two destinations, "
                f"'{self.first.to}' and '{self.second.to}'")


def _line(rule: Rule) -> str:
    return f" (line {rule.line})" if rule.line else ""


def _categories(rule: Rule, own: bool) -> frozenset[str]:
    """The categories a posting rule can post; the policy never posts direct mail."""
    category = rule.match.category
    if category is None:
        return _UNNAMED
    return frozenset((category,)) if own or category != DIRECT else frozenset()


def _within(domain: str, parent: str) -> bool:
    return domain == parent or domain.endswith("." + parent)


def _disjoint(a: Match, b: Match) -> bool:
    """Whether no message can match both: different senders, unrelated sender domains, or
    attachment required by one and excluded by the other. Other keys can always overlap."""
    if a.has_attachment is not None and b.has_attachment is not None and \
            a.has_attachment != b.has_attachment:
        return True
    if a.sender is not None and b.sender is not None:
        return a.sender != b.sender
    domains = [m.sender_domain or (m.sender.rpartition("@")[2] if m.sender else None)
               for m in (a, b)]
    if domains[0] is not None and domains[1] is not None:
        # A sender lies inside its own domain; two domains overlap when one contains the other.
        if a.sender is not None:
            return not _within(domains[0], domains[1])
        if b.sender is not None:
            return not _within(domains[1], domains[0])
        return not (_within(domains[0], domains[1]) or _within(domains[1], domains[0]))
    return False


def _conflict(user: str, a: Rule, a_own: bool, b: Rule, b_own: bool) -> Conflict | None:
    """`a` comes before `b` in the user's chain (own rules before policy)."""
    if a.to == b.to:
        return None
    shared = _categories(a, a_own) & _categories(b, b_own)
    if not shared or _disjoint(a.match, b.match):
        return None
    return Conflict(user, a, b, shared, at=b if a_own == b_own else a)


def find_conflicts(rules: RuleSet, *, include_audit: bool = False) -> list[Conflict]:
    """Pairs of posting rules that would send the same kind of mail for one user to two
    destinations (docs/rules.md, "Conflicts"). Audit rules move no mail, so they only count
    with `include_audit` (what enforcing everything would give)."""
    def posting(candidates: Sequence[Rule]) -> list[Rule]:
        return [r for r in candidates if r.posts and (include_audit or r.mode == ENFORCE)]

    policy = posting(rules.policy)
    found = [c for a, b in combinations(policy, 2) if (c := _conflict("", a, False, b, False))]
    for user, own_rules in rules.users.items():
        own = posting(own_rules)
        found += [c for a, b in combinations(own, 2) if (c := _conflict(user, a, True, b, True))]
        found += [c for a in own for b in policy if (c := _conflict(user, a, True, b, False))]
    return found


def _where(source: str, rule: Rule) -> str:
    return f"{source}:{rule.line}" if rule.line else source


def _name_problems(rules: Sequence[Rule], taken: Mapping[str, Rule],
                   source: str) -> list[str]:
    """Reserved or repeated names among `rules`, given the names already `taken`."""
    problems = []
    seen = dict(taken)
    for rule in rules:
        if rule.name in _RESERVED_NAMES:
            problems.append(f"{_where(source, rule)}: rule name '{rule.name}' is reserved")
        elif rule.name in seen:
            problems.append(f"{_where(source, rule)}: rule name '{rule.name}' already used"
                            f"{_line(seen[rule.name])}")
        seen.setdefault(rule.name, rule)
    return problems


def semantic_problems(rules: RuleSet, source: str) -> list[str]:
    """Problems only the whole RuleSet shows: repeated rule names and conflicts.

    A name must be unique among the rules that decide for one user (their own and the
    policy); two users may each name a rule "newsletters".
    """
    problems = _name_problems(rules.policy, {}, source)
    policy_names = {rule.name: rule for rule in rules.policy}
    for user_rules in rules.users.values():
        problems += _name_problems(user_rules, policy_names, source)
    problems += [f"{_where(source, c.at)}: {c.reason()}" for c in find_conflicts(rules)]
    return problems


def audit_warnings(rules: RuleSet, source: str) -> list[str]:
    """Conflicts that appear only once the audit rules are enforced."""
    now = set(find_conflicts(rules))
    return [f"{_where(source, c.at)}: once audit rules are enforced: {c.reason()}"
            for c in find_conflicts(rules, include_audit=True) if c not in now]


# -- entry points ----------------------------------------------------------------------------


def parse_rules(text: str, source: str = "rules") -> RuleSet:
    """Read rules from YAML text; `source` names it in problems ("rules.yaml:12: …")."""
    reader = _Reader(source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise RulesError([f"{source}{line}: not valid YAML: {exc.problem or exc}"]) from exc
    except yaml.YAMLError as exc:
        raise RulesError([f"{source}: not valid YAML: {exc}"]) from exc
    rules = reader.ruleset(root)
    problems = reader.problems + semantic_problems(rules, source)
    if problems:
        raise RulesError(problems)
    return rules


def load_rules(path: Path) -> RuleSet:
    """Read and check a rules file; RulesError lists every problem with its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError([f"{path}: cannot read: {exc}"]) from exc
    return parse_rules(text, str(path))


def rule_to_data(rule: Rule) -> dict[str, object]:
    """A rule in the rules-file format (plain data, JSON-ready), without its mode."""
    match = {key: getattr(rule.match, key) for key in _MATCH_KEYS
             if getattr(rule.match, key) is not None}
    if rule.match.subject is not None:
        match["subject"] = rule.match.subject.pattern
    data: dict[str, object] = {"name": rule.name, "match": match, "action": rule.action}
    if rule.to:
        data["to"] = rule.to
    if rule.description:
        data["description"] = rule.description
    return data


def rule_from_data(data: Mapping[str, object], owner: str, position: int,
                   destinations: Mapping[str, DestinationSpec], source: str) -> Rule:
    """A rule from plain data (e.g. stored JSON), checked exactly like a rules file's."""
    reader = _Reader(source, lines=False)
    reader.destinations = dict(destinations)
    try:  # represented as the nodes a rules file gives, so the same checks apply
        node = yaml.SafeDumper(io.StringIO()).represent_data(dict(data))
    except yaml.YAMLError as exc:
        raise RulesError([f"{source}: not rules-file data: {exc}"]) from exc
    rule = reader.rule(node, owner, position)
    if rule is None:
        raise RulesError(reader.problems)
    return rule


def with_user_rules(rules: RuleSet, users: Mapping[str, Sequence[Rule]],
                    source: str = "database") -> RuleSet:
    """`rules` with these users' rules replacing theirs, checked as a whole (names,
    destinations, conflicts with each other and with the policy)."""
    problems = []
    for user, user_rules in users.items():
        if not is_address(user.lower()) or not rules.is_internal(user):
            problems.append(f"{source}: user {user} is not an address in internal_domains")
        for rule in user_rules:
            if rule.posts and rule.to not in rules.destinations:
                problems.append(f"{_where(source, rule)}: rule '{rule.name}': unknown "
                                f"destination '{rule.to}'")
    merged = RuleSet(rules.internal_domains, rules.destinations, rules.policy,
                     {**rules.users, **{u.lower(): tuple(r) for u, r in users.items()}})
    problems += semantic_problems(merged, source)
    if problems:
        raise RulesError(problems)
    return merged
