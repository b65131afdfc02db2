"""A person's own rules in the web app: read, check, store, and preview on their recorded mail.

Checking goes through the rules file's own code (`rulesfile.rule_from_data`,
`with_user_rules`) against the file's destinations and policy, so a rule saved here is one the
gateway accepts. The preview runs the gateway's `decide` on what the records keep of each
message (facts, no body): sender, subject, verdict, attachment count, number of To/Cc
addresses. A condition on another recipient's address cannot be evaluated from that and is
reported as such instead of guessed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import yaml
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from sluice.core.decision import AUDIT, ENFORCE
from sluice.core.mail import Attachment, Envelope, Mail, ThreadKeys
from sluice.core.settings import Settings
from sluice.core.tables import MessageRecord, RecipientOutcome, utcnow
from sluice.core.verdict import Verdict
from sluice.router.decide import decide
from sluice.router.rules import Rule, RuleSet
from sluice.router.rulesdb import save_user_rules, stored_user_rules
from sluice.router.rulesfile import (
    RulesError,
    load_rules,
    rule_from_data,
    rule_to_data,
    with_user_rules,
)

#: The preview looks this far back.
PREVIEW_DAYS = 30
#: Addresses standing in for the To/Cc addresses the records only count.
_PLACEHOLDER = "recorded-recipient-{}@placeholder.invalid"
SOURCE = "your rules"


@dataclass(frozen=True, slots=True)
class RulePreview:
    name: str
    action: str
    to: str
    mode: str
    #: Messages of the window this rule would have decided (the first matching rule wins).
    matched: int
    #: Why the count may be off; empty when every condition could be evaluated.
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Preview:
    days: int
    #: The person's recorded messages in the window.
    messages: int
    #: Of those, recorded without a verdict: rules on category never match them.
    unclassified: int
    rules: tuple[RulePreview, ...]


def base_rules(settings: Settings | None) -> RuleSet:
    """The rules file's domains, destinations and policy (users' rules left out: each
    person's rules are checked against the policy, not against other people's rules)."""
    if settings is None or settings.rules_file is None:
        return RuleSet()
    rules = load_rules(settings.rules_file)
    return RuleSet(rules.internal_domains, rules.destinations, rules.policy, {})


def file_rules(settings: Settings | None, user: str) -> tuple[Rule, ...]:
    if settings is None or settings.rules_file is None:
        return ()
    return load_rules(settings.rules_file).rules_for(user)


def current_rules(engine: Engine, settings: Settings | None, user: str) -> tuple[Rule, ...]:
    """What the gateway applies for `user`: stored rules when there are any, else the file's."""
    base = base_rules(settings)
    with Session(engine) as session:
        stored = stored_user_rules(session, base)
    return stored.get(user.lower(), file_rules(settings, user))


def check_rules(data: object, base: RuleSet, user: str) -> tuple[Rule, ...]:
    """Rules from plain data (a list of rules-file mappings); RulesError lists every problem."""
    if data is None:
        data = []
    if not isinstance(data, list):
        raise RulesError([f"{SOURCE}: expected a list of rules (each with match, action, to)"])
    rules: list[Rule] = []
    problems: list[str] = []
    for position, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            problems.append(f"rule {position}: must be a mapping (match, action, to, …)")
            continue
        try:
            rules.append(rule_from_data(item, user.lower(), position, base.destinations,
                                        f"rule {position}"))
        except RulesError as exc:
            problems += exc.problems
    if problems:
        raise RulesError(problems)
    with_user_rules(base, {user.lower(): rules}, SOURCE)
    return tuple(rules)


def check_rules_yaml(text: str, base: RuleSet, user: str) -> tuple[Rule, ...]:
    """Rules from the YAML list the page edits (the user's part of a rules file)."""
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise RulesError([f"{SOURCE}{where}: not valid YAML: {exc.problem or exc}"]) from exc
    except yaml.YAMLError as exc:
        raise RulesError([f"{SOURCE}: not valid YAML: {exc}"]) from exc
    return check_rules(data, base, user)


def rule_data(rule: Rule) -> dict[str, object]:
    data = rule_to_data(rule)
    if rule.mode != ENFORCE:
        data["mode"] = rule.mode
    return data


def rules_yaml(rules: Sequence[Rule]) -> str:
    if not rules:
        return ""
    return yaml.safe_dump([rule_data(r) for r in rules], sort_keys=False, allow_unicode=True,
                          default_flow_style=None, width=96)


def save_rules(engine: Engine, user: str, rules: Sequence[Rule]) -> None:
    """Store checked rules; the gateway picks them up within its reload interval."""
    with Session(engine) as session:
        save_user_rules(session, user.lower(), rules)
        session.commit()


def _mail(record: MessageRecord, user: str) -> Mail:
    """What `decide` needs, rebuilt from a record: the body and other addresses are unknown."""
    placeholders = [_PLACEHOLDER.format(i) for i in range(record.to_count + record.cc_count)]
    return Mail(
        envelope=Envelope(record.mail_from, (user,)), raw=b"", message_id=record.message_id,
        subject=record.subject or "", from_addr=record.header_from.lower(), from_name="",
        to=tuple(placeholders[:record.to_count]), cc=tuple(placeholders[record.to_count:]),
        reply_to=(), date=None,
        thread=ThreadKeys(record.message_id, record.in_reply_to, (), record.thread_subject,
                          record.reply_depth),
        list_id="", precedence="", auto_submitted="", headers=(), text="", html="",
        attachments=tuple(Attachment("", "", 0, "") for _ in range(record.attachment_count)))


def _verdict(record: MessageRecord) -> Verdict | None:
    if record.category is None:
        return None
    return Verdict(record.category, record.confidence or 0.0, (), record.model_version or "")


def _notes(rule: Rule, user: str, unclassified: int) -> tuple[str, ...]:
    notes = []
    if rule.match.recipient is not None and rule.match.recipient != user:
        notes.append(f"the records keep only your own address among the recipients, so "
                     f"'recipient: {rule.match.recipient}' is never counted as matching")
    if rule.match.needs_verdict and unclassified:
        notes.append(f"{unclassified} messages were recorded without a category; this rule "
                     "cannot match them")
    if rule.mode == AUDIT:
        notes.append("audit mode: the rule is recorded but moves no mail")
    return tuple(notes)


def recorded_messages(engine: Engine, user: str, since: datetime) -> list[MessageRecord]:
    """The records of messages `user` was an envelope recipient of, since `since`."""
    mine = select(col(RecipientOutcome.message_pk)).where(
        func.lower(col(RecipientOutcome.recipient)) == user.lower())
    with Session(engine) as session:
        return list(session.exec(select(MessageRecord).where(
            col(MessageRecord.id).in_(mine), col(MessageRecord.received_at) >= since)))


def preview(engine: Engine, base: RuleSet, user: str, rules: Sequence[Rule], *,
            days: int = PREVIEW_DAYS, now: datetime | None = None) -> Preview:
    """How many of `user`'s recorded messages of the last `days` each rule would have
    decided, first matching rule winning as in the gateway (the policy is left out)."""
    user = user.lower()
    since = (now or utcnow()) - timedelta(days=days)
    records = recorded_messages(engine, user, since)
    ruleset = RuleSet(frozenset({user.rpartition("@")[2]}), base.destinations, (),
                      {user: tuple(rules)})
    counts: Counter[str] = Counter()
    for record in records:
        for action in decide(_mail(record, user), _verdict(record), ruleset).actions:
            if action.rule:
                counts[action.rule] += 1
    unclassified = sum(1 for r in records if r.category is None)
    return Preview(days, len(records), unclassified, tuple(
        RulePreview(r.name, r.action, r.to, r.mode, counts[r.name], _notes(r, user, unclassified))
        for r in rules))
