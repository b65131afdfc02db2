"""The rule simulator: what a rules file would have done to a set of messages.

Pure counting over a stream: every message is decided by the same `decide` the gateway uses
and forgotten; only counters are kept (per action, destination, user, rule and category), so
memory is bounded by the number of users and destinations, not by the number of messages.

"Inbox deliveries" are the internal envelope recipients summed over the messages. Mail read
from disk has no envelope: its recipients are the To, Cc and (when present) Bcc addresses,
each counted once per message (`mail_from_file`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sluice.core.decision import (
    AUDIT,
    COPY,
    DELIVER,
    DIGEST,
    DIVERT,
    ENFORCE,
    RecipientAction,
    RoutingDecision,
)
from sluice.core.mail import Envelope, Mail
from sluice.core.parse import normalize_line_endings, parse, parse_addresses
from sluice.core.verdict import Verdict
from sluice.router.decide import EXTERNAL, decide
from sluice.router.rules import RuleSet

#: How many skipped messages are named one by one; the rest are only counted per reason.
MAX_SKIPPED_EXAMPLES = 20
#: How many users the text report lists (JSON lists every user).
TEXT_USERS = 25
#: What the report says about where the recipients came from.
ENVELOPE_NOTE = ("mail read from files has no envelope: its recipients are the To, Cc and "
                 "Bcc (when present) addresses, each counted once per message")
NO_RULE = "(no rule)"
NO_RECIPIENTS = "no recipient addresses in To, Cc or Bcc"

Classify = Callable[[Mail], Verdict | None]


@dataclass(frozen=True, slots=True)
class Skipped:
    """A message that could not be simulated, and why."""

    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class UserCounts:
    """One internal recipient's messages under the rules.

    `kept` counts the messages still in the inbox with the enforced rules (deliver, copy, or
    an audit-mode decision); `audit` those an audit-mode rule would take out of the inbox.
    """

    received: int = 0
    kept: int = 0
    diverted: int = 0
    digest: int = 0
    copied: int = 0
    audit: int = 0


@dataclass(frozen=True, slots=True)
class DestinationCounts:
    """Messages posted to a destination (once per message) and the recipients behind them."""

    messages: int = 0
    recipients: int = 0


@dataclass(frozen=True, slots=True)
class Simulation:
    """What the rules would have done; `actions` and `destinations` are the enforced rules,
    `audit_actions` and `audit_destinations` what audit-mode rules would do once enforced."""

    messages: int = 0
    skipped: int = 0
    skip_reasons: Mapping[str, int] = field(default_factory=dict)
    skipped_examples: tuple[Skipped, ...] = ()
    recipients: int = 0
    external: int = 0
    inbox_before: int = 0
    inbox_after: int = 0
    inbox_after_audit: int = 0
    actions: Mapping[str, int] = field(default_factory=dict)
    audit_actions: Mapping[str, int] = field(default_factory=dict)
    destinations: Mapping[str, DestinationCounts] = field(default_factory=dict)
    audit_destinations: Mapping[str, DestinationCounts] = field(default_factory=dict)
    users: Mapping[str, UserCounts] = field(default_factory=dict)
    rules: Mapping[str, int] = field(default_factory=dict)
    categories: Mapping[str, int] = field(default_factory=dict)
    classified: bool = False
    #: Messages by what the gateway does with them under the enforced rules (`SHAPES`).
    shapes: Mapping[str, int] = field(default_factory=dict)

    @property
    def reduction(self) -> int:
        """Inbox deliveries the enforced rules take away."""
        return self.inbox_before - self.inbox_after

    @property
    def reduction_percent(self) -> float:
        return _percent(self.reduction, self.inbox_before)

    @property
    def audit_reduction(self) -> int:
        """Inbox deliveries taken away if the audit-mode rules were enforced as well."""
        return self.inbox_before - self.inbox_after_audit

    @property
    def audit_reduction_percent(self) -> float:
        return _percent(self.audit_reduction, self.inbox_before)


#: What the gateway does with one message under the enforced rules: relays it and posts
#: nothing, posts it and relays it to the recipients who keep it (external ones always do),
#: or posts it and relays nothing. Each costs the gateway differently (docs/performance.md).
RELAYED, POSTED_AND_RELAYED, POSTED_ONLY = "relayed", "posted_and_relayed", "posted_only"
SHAPES = (RELAYED, POSTED_AND_RELAYED, POSTED_ONLY)


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def _unique(addresses: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(addresses))


def mail_from_file(raw: bytes) -> Mail:
    """Parse a message read from disk, with the envelope its headers imply: sender = From,
    recipients = To + Cc + Bcc (when present), each address once."""
    mail = parse(normalize_line_endings(raw))
    bcc_values = [value for key, value in mail.headers if key.lower() == "bcc"]
    bcc = tuple(addr.lower() for _, addr in parse_addresses(bcc_values) if "@" in addr)
    recipients = _unique(mail.to + mail.cc + bcc)
    if recipients == mail.envelope.rcpt_tos:
        return mail
    return replace(mail, envelope=Envelope(mail_from=mail.envelope.mail_from,
                                           rcpt_tos=recipients))


def distinct_actions(decision: RoutingDecision) -> Iterator[RecipientAction]:
    """Each recipient address's action once: the same address twice in one envelope is one
    inbox copy (the first action counts)."""
    seen: set[str] = set()
    for action in decision.actions:
        recipient = action.recipient.lower()
        if recipient not in seen:
            seen.add(recipient)
            yield action


def is_inbox_delivery(action: RecipientAction) -> bool:
    """Whether the recipient is internal: only internal recipients' inboxes are counted."""
    return action.rule != EXTERNAL


class _Tally:
    """The mutable counters behind one `Simulation`."""

    def __init__(self) -> None:
        self.messages = self.skipped = self.recipients = self.external = 0
        self.inbox_before = self.inbox_after = self.inbox_after_audit = 0
        self.skip_reasons: Counter[str] = Counter()
        self.examples: list[Skipped] = []
        self.actions: Counter[str] = Counter()
        self.audit_actions: Counter[str] = Counter()
        self.dest_messages: Counter[str] = Counter()
        self.dest_recipients: Counter[str] = Counter()
        self.audit_dest_messages: Counter[str] = Counter()
        self.audit_dest_recipients: Counter[str] = Counter()
        self.users: dict[str, Counter[str]] = {}
        self.rules: Counter[str] = Counter()
        self.categories: Counter[str] = Counter()
        self.shapes: Counter[str] = Counter()

    def skip(self, skipped: Skipped) -> None:
        self.skipped += 1
        self.skip_reasons[skipped.reason] += 1
        if len(self.examples) < MAX_SKIPPED_EXAMPLES:
            self.examples.append(skipped)

    def add(self, mail: Mail, verdict: Verdict | None, rules: RuleSet) -> None:
        decision = decide(mail, verdict, rules)
        self.messages += 1
        if verdict is not None:
            self.categories[verdict.category] += 1
        posted: set[str] = set()
        audit_posted: set[str] = set()
        relayed = False
        for action in distinct_actions(decision):
            recipient = action.recipient.lower()
            self.recipients += 1
            relayed = relayed or action.keeps_mail
            if not is_inbox_delivery(action):
                self.external += 1
                continue
            self.inbox_before += 1
            self.rules[action.rule or NO_RULE] += 1
            user = self.users.setdefault(recipient, Counter())
            user["received"] += 1
            leaves = action.action in (DIVERT, DIGEST)
            if action.mode == AUDIT:
                self.audit_actions[action.action] += 1
                self.inbox_after += 1
                user["kept"] += 1
                if leaves:
                    user["audit"] += 1
                else:
                    self.inbox_after_audit += 1
                if action.destination:
                    self.audit_dest_recipients[action.destination] += 1
                    audit_posted.add(action.destination)
                continue
            self.actions[action.action] += 1
            if not leaves:
                self.inbox_after += 1
                self.inbox_after_audit += 1
                user["kept"] += 1
            user[{DIVERT: "diverted", DIGEST: "digest", COPY: "copied"}.get(
                action.action, "delivered")] += 1
            if action.destination and action.mode == ENFORCE:
                self.dest_recipients[action.destination] += 1
                posted.add(action.destination)
        for name in posted:
            self.dest_messages[name] += 1
        self.shapes[RELAYED if not posted else POSTED_AND_RELAYED if relayed else POSTED_ONLY] += 1
        for name in audit_posted:
            self.audit_dest_messages[name] += 1

    def result(self, classified: bool) -> Simulation:
        def destinations(messages: Counter[str],
                         recipients: Counter[str]) -> dict[str, DestinationCounts]:
            return {name: DestinationCounts(messages[name], recipients[name])
                    for name in sorted(recipients)}

        return Simulation(
            messages=self.messages, skipped=self.skipped,
            skip_reasons=dict(self.skip_reasons.most_common()),
            skipped_examples=tuple(self.examples),
            recipients=self.recipients, external=self.external,
            inbox_before=self.inbox_before, inbox_after=self.inbox_after,
            inbox_after_audit=self.inbox_after_audit,
            actions={a: self.actions[a] for a in (DELIVER, DIVERT, DIGEST, COPY)},
            audit_actions={a: n for a in (DELIVER, DIVERT, DIGEST, COPY)
                           if (n := self.audit_actions[a])},
            destinations=destinations(self.dest_messages, self.dest_recipients),
            audit_destinations=destinations(self.audit_dest_messages,
                                            self.audit_dest_recipients),
            users={user: UserCounts(
                received=c["received"], kept=c["kept"], diverted=c["diverted"],
                digest=c["digest"], copied=c["copied"], audit=c["audit"])
                for user, c in sorted(self.users.items())},
            rules=dict(sorted(self.rules.items())),
            categories=dict(self.categories.most_common()),
            classified=classified,
            shapes={shape: self.shapes[shape] for shape in SHAPES},
        )


def simulate(messages: Iterable[Mail | Skipped], rules: RuleSet,
             classify: Classify | None = None) -> Simulation:
    """Decide every message as the gateway would and count the outcomes.

    `messages` may carry `Skipped` entries for what could not be read; they are counted with
    their reason. A message without any recipient is skipped, and so is one the classifier
    fails on. `classify` None (or returning None) decides without a verdict, as the gateway
    does with classification off: rules on `category` then never match.
    """
    tally = _Tally()
    for item in messages:
        if isinstance(item, Skipped):
            tally.skip(item)
            continue
        if not item.envelope.rcpt_tos:
            tally.skip(Skipped(_name(item), NO_RECIPIENTS))
            continue
        try:
            verdict = classify(item) if classify is not None else None
        except Exception as exc:  # one odd message must not end the simulation
            tally.skip(Skipped(_name(item), f"classifier failed: {type(exc).__name__}"))
            continue
        tally.add(item, verdict, rules)
    return tally.result(classified=classify is not None)


def _name(mail: Mail) -> str:
    return mail.message_id or mail.subject or "(message without Message-ID or Subject)"


# --- rendering ---------------------------------------------------------------------------


def to_json(sim: Simulation, *, rules_file: str = "", data: Iterable[str] = ()) -> dict[str, Any]:
    """The simulation as a JSON-ready object (every user, rule and skipped example)."""
    return {
        "rules_file": rules_file,
        "data": list(data),
        "classified": sim.classified,
        "envelope_note": ENVELOPE_NOTE,
        "messages": sim.messages,
        "skipped": {"count": sim.skipped, "reasons": dict(sim.skip_reasons),
                    "examples": [{"name": s.name, "reason": s.reason}
                                 for s in sim.skipped_examples]},
        "recipients": {"total": sim.recipients, "internal": sim.inbox_before,
                       "external": sim.external},
        "inbox_deliveries": {
            "before": sim.inbox_before, "after": sim.inbox_after,
            "reduction": sim.reduction, "reduction_percent": sim.reduction_percent,
        },
        "audit": {
            "actions": dict(sim.audit_actions),
            "destinations": {n: _dest_json(c) for n, c in sim.audit_destinations.items()},
            "inbox_after_if_enforced": sim.inbox_after_audit,
            "reduction_if_enforced": sim.audit_reduction,
            "reduction_percent_if_enforced": sim.audit_reduction_percent,
        },
        "actions": dict(sim.actions),
        "destinations": {n: _dest_json(c) for n, c in sim.destinations.items()},
        "users": {u: {"received": c.received, "kept": c.kept, "diverted": c.diverted,
                      "digest": c.digest, "copied": c.copied, "audit_would_divert": c.audit}
                  for u, c in sim.users.items()},
        "rules": dict(sim.rules),
        "categories": dict(sim.categories),
        "shapes": dict(sim.shapes),
    }


def _dest_json(counts: DestinationCounts) -> dict[str, int]:
    return {"messages": counts.messages, "recipients": counts.recipients}


def _table(rows: Sequence[tuple[str, ...]], indent: str = "  ") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(
        cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(
            zip(row, widths, strict=True))).rstrip() for row in rows]


def format_text(sim: Simulation, *, rules_file: str = "", data: Iterable[str] = ()) -> str:
    """The report people read: inbox reduction first, then the counts behind it."""
    shown = ", ".join(data)
    lines = [f"Rule simulation of {rules_file or 'the rules'}" + (f" on {shown}" if shown else ""),
             f"Messages: {sim.messages} simulated, {sim.skipped} skipped",
             f"Recipients: {sim.recipients} ({sim.inbox_before} internal, "
             f"{sim.external} external)",
             f"Note: {ENVELOPE_NOTE}.",
             "Classifier: " + ("on" if sim.classified else
                               "off (rules that match on category never match)"),
             "",
             f"Inbox deliveries (internal recipients): {sim.inbox_before} -> {sim.inbox_after} "
             f"({sim.reduction} fewer, {sim.reduction_percent:.1f}%)"]
    if sim.audit_actions:
        lines.append(f"If the audit-mode rules were enforced too: {sim.inbox_before} -> "
                     f"{sim.inbox_after_audit} ({sim.audit_reduction} fewer, "
                     f"{sim.audit_reduction_percent:.1f}%)")
    lines += ["", "Per action (internal recipients, enforced rules):"]
    lines += _table([(a, str(n)) for a, n in sim.actions.items()])
    if sim.audit_actions:
        lines += ["Would do in audit mode (still delivered as before):"]
        lines += _table([(a, str(n)) for a, n in sim.audit_actions.items()])
    if sim.messages:
        lines += ["", "Per message (enforced rules):"]
        lines += _table([(label, str(sim.shapes.get(shape, 0))) for shape, label in (
            (RELAYED, "relayed only"), (POSTED_AND_RELAYED, "posted and relayed"),
            (POSTED_ONLY, "posted, not relayed"))])
    for title, dests in (("Per destination (enforced)", sim.destinations),
                         ("Per destination, would post in audit mode", sim.audit_destinations)):
        if dests:
            lines += ["", f"{title}:"]
            lines += _table([("destination", "messages", "recipients")] + [
                (n, str(c.messages), str(c.recipients)) for n, c in dests.items()])
    if sim.users:
        ranked = sorted(sim.users.items(),
                        key=lambda kv: (-(kv[1].received - kv[1].kept), -kv[1].audit, kv[0]))
        lines += ["", "Per user:"]
        lines += _table([("user", "received", "kept", "diverted", "digest", "copied",
                          "audit-divert")] + [
            (u, str(c.received), str(c.kept), str(c.diverted), str(c.digest), str(c.copied),
             str(c.audit)) for u, c in ranked[:TEXT_USERS]])
        if len(ranked) > TEXT_USERS:
            lines.append(f"  … {len(ranked) - TEXT_USERS} more users (--json lists all)")
    if sim.rules:
        lines += ["", "Per rule (recipient decisions):"]
        lines += _table([(r, str(n)) for r, n in sim.rules.items()])
    if sim.categories:
        lines += ["", "Per category (messages):"]
        lines += _table([(c, str(n)) for c, n in sim.categories.items()])
    if sim.skipped:
        lines += ["", f"Skipped ({sim.skipped}):"]
        lines += [f"  {n}  {reason}" for reason, n in sim.skip_reasons.items()]
        lines += [f"  {s.name}: {s.reason}" for s in sim.skipped_examples]
        if sim.skipped > len(sim.skipped_examples):
            lines.append(f"  … {sim.skipped - len(sim.skipped_examples)} more")
    return "\n".join(lines)
