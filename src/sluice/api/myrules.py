"""Rules in the web app — a person's own, and the organisation policy for admins: read,
check, store, and preview on recorded mail.

Checking goes through the rules file's own code (`rulesfile.rule_from_data`,
`with_user_rules`) against the file's destinations and the policy in force (the stored one
when admins edited it, `rulesdb.policy_in_force`), so a rule saved here is one the gateway
accepts. The preview runs the gateway's `decide` on what the records keep of each
message (facts, no body): sender, subject, verdict, attachment count, number of To/Cc
addresses. A condition on another recipient's address cannot be evaluated from that and is
reported as such instead of guessed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
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
from sluice.router.rules import POLICY, DestinationSpec, Rule, RuleSet
from sluice.router.rulesdb import (
    load_stored_rules,
    policy_in_force,
    save_policy,
    save_user_rules,
    stored_user_rules,
    with_policy,
)
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
#: The policy preview counts at most this many of the newest messages of its window.
POLICY_PREVIEW_LIMIT = 20_000


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
    #: Decisions counted: one per message for a person; per internal recipient for the policy.
    deliveries: int = 0
    #: True when only the newest POLICY_PREVIEW_LIMIT messages of the window were counted.
    capped: bool = False


def file_rules(settings: Settings | None) -> RuleSet:
    """The rules file as it is (no file: nothing is diverted)."""
    if settings is None or settings.rules_file is None:
        return RuleSet()
    return load_rules(settings.rules_file)


def base_rules(engine: Engine, settings: Settings | None) -> RuleSet:
    """The file's domains and destinations with the policy in force (users' rules left out:
    each person's rules are checked against the policy, not against other people's)."""
    with Session(engine) as session:
        rules = policy_in_force(session, file_rules(settings))
    return RuleSet(rules.internal_domains, rules.destinations, rules.policy, {})


def users_in_force(engine: Engine, settings: Settings | None) -> RuleSet:
    """The file's domains, destinations and users' rules with the stored users' rules in
    their place, without a policy: what a new policy is checked against."""
    rules = file_rules(settings)
    with Session(engine) as session:
        stored = stored_user_rules(session, rules)
    return RuleSet(rules.internal_domains, rules.destinations, (), {**rules.users, **stored})


def rules_in_force(engine: Engine, settings: Settings | None) -> RuleSet:
    """Everything the gateway applies: the file with the stored policy and users' rules."""
    with Session(engine) as session:
        return load_stored_rules(session, file_rules(settings))


def current_rules(engine: Engine, settings: Settings | None, user: str) -> tuple[Rule, ...]:
    """What the gateway applies for `user`: stored rules when there are (even none), else
    the file's."""
    rules = file_rules(settings)
    with Session(engine) as session:
        stored = stored_user_rules(session, rules)
    return stored.get(user.lower(), rules.rules_for(user))


def check_rules(data: object, base: RuleSet, user: str) -> tuple[Rule, ...]:
    """Rules from plain data (a list of rules-file mappings); RulesError lists every problem."""
    rules = rules_from_data(data, user.lower(), base.destinations, SOURCE)
    with_user_rules(base, {user.lower(): rules}, SOURCE)
    return rules


def check_policy(data: object, in_force: RuleSet) -> tuple[Rule, ...]:
    """A new organisation policy from plain data, checked like the rules file's against
    the destinations and every user's rules in force; RulesError lists every problem."""
    rules = rules_from_data(data, POLICY, in_force.destinations, POLICY)
    with_policy(in_force, rules, POLICY)
    return rules


def rules_from_data(data: object, owner: str, destinations: Mapping[str, DestinationSpec],
                    source: str) -> tuple[Rule, ...]:
    """Rules of one owner from a list of rules-file mappings, each checked on its own."""
    if data is None:
        data = []
    if not isinstance(data, list):
        raise RulesError([f"{source}: expected a list of rules (each with match, action, to)"])
    rules: list[Rule] = []
    problems: list[str] = []
    for position, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            problems.append(f"rule {position}: must be a mapping (match, action, to, …)")
            continue
        try:
            rules.append(rule_from_data(item, owner, position, destinations,
                                        f"rule {position}"))
        except RulesError as exc:
            problems += exc.problems
    if problems:
        raise RulesError(problems)
    return tuple(rules)


def yaml_data(text: str, source: str = SOURCE) -> object:
    """Plain data from the YAML the pages edit; RulesError names the line of a syntax error."""
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise RulesError([f"{source}{where}: not valid YAML: {exc.problem or exc}"]) from exc
    except yaml.YAMLError as exc:
        raise RulesError([f"{source}: not valid YAML: {exc}"]) from exc


def check_rules_yaml(text: str, base: RuleSet, user: str) -> tuple[Rule, ...]:
    """Rules from the YAML list the page edits (the user's part of a rules file)."""
    return check_rules(yaml_data(text), base, user)


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
        save_user_rules(session, user.lower(), rules, by=user.lower())
        session.commit()


def store_policy(engine: Engine, policy: Sequence[Rule], by: str) -> None:
    """Store a checked policy in place of the file's; the gateway picks it up like users'."""
    with Session(engine) as session:
        save_policy(session, policy, by=by)
        session.commit()


def _mail(record: MessageRecord, recipients: tuple[str, ...]) -> Mail:
    """What `decide` needs, rebuilt from a record: the body and header addresses unknown."""
    placeholders = [_PLACEHOLDER.format(i) for i in range(record.to_count + record.cc_count)]
    return Mail(
        envelope=Envelope(record.mail_from, recipients), raw=b"",
        message_id=record.message_id,
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


def _notes(rule: Rule, recipient_note: Callable[[str], str],
           unclassified: int) -> tuple[str, ...]:
    notes = []
    if rule.match.recipient is not None and recipient_note(rule.match.recipient):
        notes.append(recipient_note(rule.match.recipient))
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


def recorded_deliveries(engine: Engine, rules: RuleSet, since: datetime, limit: int
                        ) -> list[tuple[MessageRecord, tuple[str, ...]]]:
    """The newest `limit` recorded messages since `since`, each with its internal envelope
    recipients (those the policy decides for)."""
    with Session(engine) as session:
        records = list(session.exec(select(MessageRecord).where(
            col(MessageRecord.received_at) >= since).order_by(
            col(MessageRecord.received_at).desc()).limit(limit)))
        recipients: dict[int, set[str]] = {}
        ids = [r.id for r in records if r.id is not None]
        for start in range(0, len(ids), 500):
            for pk, address in session.exec(select(
                    col(RecipientOutcome.message_pk), col(RecipientOutcome.recipient)).where(
                    col(RecipientOutcome.message_pk).in_(ids[start:start + 500]))):
                if rules.is_internal(address):
                    recipients.setdefault(pk, set()).add(address.lower())
    return [(r, tuple(sorted(recipients[r.id]))) for r in records
            if r.id is not None and r.id in recipients]


def _count(deliveries: Iterable[tuple[MessageRecord, tuple[str, ...]]],
           ruleset: RuleSet) -> Counter[str]:
    """How many recipient decisions each rule made: the gateway's own `decide` on records."""
    counts: Counter[str] = Counter()
    for record, recipients in deliveries:
        for action in decide(_mail(record, recipients), _verdict(record), ruleset).actions:
            if action.rule:
                counts[action.rule] += 1
    return counts


def _previews(rules: Sequence[Rule], counts: Counter[str],
              recipient_note: Callable[[str], str], unclassified: int) -> tuple[RulePreview, ...]:
    return tuple(RulePreview(r.name, r.action, r.to, r.mode, counts[r.name],
                             _notes(r, recipient_note, unclassified)) for r in rules)


def preview(engine: Engine, base: RuleSet, user: str, rules: Sequence[Rule], *,
            days: int = PREVIEW_DAYS, now: datetime | None = None) -> Preview:
    """How many of `user`'s recorded messages of the last `days` each rule would have
    decided, first matching rule winning as in the gateway (the policy is left out)."""
    user = user.lower()
    since = (now or utcnow()) - timedelta(days=days)
    records = recorded_messages(engine, user, since)
    ruleset = RuleSet(frozenset({user.rpartition("@")[2]}), base.destinations, (),
                      {user: tuple(rules)})
    counts = _count(((record, (user,)) for record in records), ruleset)
    unclassified = sum(1 for r in records if r.category is None)
    def note(recipient: str) -> str:
        return "" if recipient == user else (
            "the records keep only your own address among the recipients, so "
            f"'recipient: {recipient}' is never counted as matching")

    previews = _previews(rules, counts, note, unclassified)
    return Preview(days, len(records), unclassified, previews, deliveries=len(records))


def policy_preview(engine: Engine, in_force: RuleSet, policy: Sequence[Rule], *,
                   days: int = PREVIEW_DAYS, now: datetime | None = None) -> Preview:
    """How many recorded deliveries (message × internal recipient) of the last `days` each
    policy rule would have decided, with every user's own rules in force coming first."""
    since = (now or utcnow()) - timedelta(days=days)
    deliveries = recorded_deliveries(engine, in_force, since, POLICY_PREVIEW_LIMIT)
    ruleset = RuleSet(in_force.internal_domains, in_force.destinations, tuple(policy),
                      in_force.users)
    counts = _count(deliveries, ruleset)
    unclassified = sum(1 for r, _ in deliveries if r.category is None)
    def note(recipient: str) -> str:
        return (f"the records keep the envelope recipients only, so 'recipient: {recipient}' "
                "counts only mail whose envelope named it")

    return Preview(days, len(deliveries), unclassified,
                   _previews(policy, counts, note, unclassified),
                   deliveries=sum(len(rcpts) for _, rcpts in deliveries),
                   capped=len(deliveries) >= POLICY_PREVIEW_LIMIT)
