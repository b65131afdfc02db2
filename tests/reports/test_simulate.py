"""The rule simulator: counts computed here independently of Sluice's parser and decide.

Mail: real corpus messages (Enron, internal domain enron.com) and generated ones, in a maildir
and an mbox built by each test. The rules use only sender and subject, so the expected
outcome of every recipient is written out below in plain Python (`expected_action`).
"""

from __future__ import annotations

import email
import json
import mailbox
import pathlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path

import pytest

from sluice.cli import main
from sluice.core.mail import Mail
from sluice.core.verdict import Verdict
from sluice.reports.simulate import (
    NO_RECIPIENTS,
    DestinationCounts,
    Simulation,
    Skipped,
    format_text,
    mail_from_file,
    simulate,
    to_json,
)
from sluice.router.rulesfile import load_rules
from sluice.simulate_command import messages

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
INBOX = CORPUS / "enron_inboxes" / "dean-c" / "inbox"

RULES = """\
internal_domains: [example.com, enron.com]
destinations:
  news: {kind: space}
  partners: {kind: webhook, url: "http://127.0.0.1:9/hook"}
policy:
  - {match: {sender: news@vendor.example}, action: divert, to: news}
  - {match: {sender_domain: partner.example, subject: "^\\\\[FYI\\\\]"},
     action: digest, to: partners}
  - {match: {sender_domain: partner.example}, action: copy, to: partners}
  - {match: {subject: "(?i)lunch"}, action: divert, to: news, mode: audit}
users:
  bob@example.com:
    - {match: {subject: "(?i)lunch"}, action: deliver}
    - {match: {sender: news@vendor.example}, action: deliver}
"""

INTERNAL = ("example.com", "enron.com")


@dataclass(frozen=True)
class Outcome:
    recipient: str
    action: str
    destination: str = ""
    mode: str = "enforce"


def expected_actions(raw: bytes) -> list[Outcome]:
    """The rules above, by hand, on the stdlib's reading of the headers."""
    msg = email.message_from_bytes(raw)
    found: list[str] = []
    for name in ("To", "Cc", "Bcc"):
        for _, addr in getaddresses([str(v) for v in msg.get_all(name) or []]):
            if "@" in addr and addr.lower() not in found:
                found.append(addr.lower())
    sender = getaddresses([str(msg.get("From", ""))])[0][1].lower()
    subject = str(msg.get("Subject", ""))
    lunch = "lunch" in subject.lower()
    domain = sender.rpartition("@")[2]
    partner = domain == "partner.example" or domain.endswith(".partner.example")
    out = []
    for rcpt in found:
        if rcpt.rsplit("@", 1)[1] not in INTERNAL:
            out.append(Outcome(rcpt, "external"))
        elif rcpt == "bob@example.com" and (lunch or sender == "news@vendor.example"):
            out.append(Outcome(rcpt, "deliver"))
        elif sender == "news@vendor.example":
            out.append(Outcome(rcpt, "divert", "news"))
        elif partner and subject.startswith("[FYI]"):
            out.append(Outcome(rcpt, "digest", "partners"))
        elif partner:
            out.append(Outcome(rcpt, "copy", "partners"))
        elif lunch:
            out.append(Outcome(rcpt, "divert", "news", "audit"))
        else:
            out.append(Outcome(rcpt, "deliver"))
    return out


@dataclass
class Expected:
    messages: int = 0
    before: int = 0
    after: int = 0
    after_audit: int = 0
    external: int = 0
    #: messages by shape: relayed only / posted and relayed / posted, not relayed
    shapes: Counter[str] = field(default_factory=Counter)


def expected_counts(raws: list[bytes]) -> tuple[Expected, Counter[str], Counter[str],
                                                  Counter[tuple[str, str]], Counter[str]]:
    """Totals, enforced actions, audit actions, (destination, messages|recipients), user
    diversions — computed from `expected_actions` only."""
    totals = Expected()
    actions: Counter[str] = Counter()
    audit: Counter[str] = Counter()
    dests: Counter[tuple[str, str]] = Counter()
    diverted: Counter[str] = Counter()
    for raw in raws:
        outcomes = expected_actions(raw)
        if not outcomes:
            continue
        totals.messages += 1
        posted = set()
        for o in outcomes:
            if o.action == "external":
                totals.external += 1
                continue
            totals.before += 1
            leaves = o.action in ("divert", "digest")
            if o.mode == "audit":
                audit[o.action] += 1
                totals.after += 1
                totals.after_audit += 0 if leaves else 1
                continue
            actions[o.action] += 1
            if not leaves:
                totals.after += 1
                totals.after_audit += 1
            else:
                diverted[o.recipient] += 1
            if o.destination:
                dests[(o.destination, "recipients")] += 1
                posted.add(o.destination)
        for name in posted:
            dests[(name, "messages")] += 1
        relayed = any(o.action in ("external", "deliver", "copy") or o.mode == "audit"
                      for o in outcomes)
        totals.shapes["relayed" if not posted else "posted_and_relayed" if relayed
                      else "posted_only"] += 1
    return totals, actions, audit, dests, diverted


def generated() -> list[bytes]:
    """Messages for every rule and the corner cases: duplicates, Bcc, externals, Bob."""
    def make(sender: str, subject: str, to: str, cc: str = "", bcc: str = "") -> bytes:
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = to
        if cc:
            msg["Cc"] = cc
        if bcc:
            msg["Bcc"] = bcc
        msg["Subject"] = subject
        msg.set_content("Hello,\n\nsee below.\n")
        return msg.as_bytes()

    return [
        make("News <news@vendor.example>", "Product news", "alice@example.com, bob@example.com",
             "carol@example.com, ext@other.example"),
        make("news@vendor.example", "More news", "Alice <ALICE@example.com>",
             "alice@example.com", bcc="dave@example.com"),
        make("Pat <pat@partner.example>", "[FYI] price list", "alice@example.com",
             "carol@example.com"),
        make("pat@eu.partner.example", "Contract draft", "bob@example.com",
             "someone@customer.example"),
        make("carol@example.com", "Lunch on Friday?", "alice@example.com, bob@example.com",
             "dave@example.com"),
        make("carol@example.com", "Minutes", "dave@example.com"),
        make("ext@other.example", "Hello", "partner@other.example"),
    ]


def corpus_messages(count: int = 12) -> list[bytes]:
    if not INBOX.is_dir():
        pytest.skip(f"corpus not found at {CORPUS}")
    files = sorted(INBOX.iterdir(), key=lambda p: p.name)[:count]
    return [p.read_bytes() for p in files]


def write_maildir(folder: Path, raws: list[bytes]) -> Path:
    for sub in ("new", "cur", "tmp"):
        (folder / sub).mkdir(parents=True)
    for index, raw in enumerate(raws):
        sub = "new" if index % 2 else "cur"
        (folder / sub / f"{index:04d}.sluice:2,").write_bytes(raw)
    return folder


def write_mbox(path: Path, raws: list[bytes]) -> Path:
    box = mailbox.mbox(path)
    try:
        for raw in raws:
            box.add(raw)
        box.flush()
    finally:
        box.close()
    return path


@pytest.fixture()
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


def check(sim: Simulation, raws: list[bytes]) -> None:
    totals, actions, audit, dests, diverted = expected_counts(raws)
    assert sim.messages == totals.messages
    assert sim.inbox_before == totals.before
    assert sim.inbox_after == totals.after
    assert sim.inbox_after_audit == totals.after_audit
    assert sim.external == totals.external
    assert sim.recipients == totals.before + totals.external
    assert sum(sim.shapes.values()) == sim.messages
    assert +Counter(sim.shapes) == +totals.shapes
    assert {a: n for a, n in sim.actions.items() if n} == dict(actions)
    assert dict(sim.audit_actions) == dict(audit)
    got = Counter({(n, "messages"): c.messages for n, c in sim.destinations.items()})
    got.update({(n, "recipients"): c.recipients for n, c in sim.destinations.items()})
    assert +got == +dests
    assert {u: c.diverted + c.digest for u, c in sim.users.items()
            if c.diverted + c.digest} == dict(diverted)
    assert sum(c.received for c in sim.users.values()) == totals.before
    assert sum(c.kept for c in sim.users.values()) == totals.after
    reduction = totals.before - totals.after
    assert sim.reduction == reduction
    assert sim.reduction_percent == round(100 * reduction / totals.before, 1)
    assert sim.audit_reduction_percent == round(
        100 * (totals.before - totals.after_audit) / totals.before, 1)


def test_generated_messages_counted_as_decided_by_hand(rules_file: Path) -> None:
    raws = generated()
    sim = simulate((mail_from_file(r) for r in raws), load_rules(rules_file))
    check(sim, raws)
    # The hand-written figures of this small set, as a guard on the helper above too:
    # news (alice, bob kept, carol, ext) + (alice once, dave by Bcc) → 4 diverted.
    assert sim.destinations["news"].messages == 2
    assert sim.destinations["news"].recipients == 4
    assert sim.users["bob@example.com"].kept == sim.users["bob@example.com"].received == 3
    # The lunch mail: alice and dave would leave the inbox in audit; Bob's own rule keeps it.
    assert sim.audit_actions == {"divert": 2}
    assert sim.users["alice@example.com"].audit == 1
    assert sim.users["bob@example.com"].audit == 0
    assert sim.audit_destinations == {"news": DestinationCounts(messages=1, recipients=2)}
    # Posted and still relayed: the first news mail (Bob and ext keep it), the contract
    # draft (copied); posted only: the second news mail (alice, dave) and the [FYI] digest.
    assert sim.shapes == {"relayed": 3, "posted_and_relayed": 2, "posted_only": 2}


def test_maildir_and_mbox_of_corpus_and_generated_mail(rules_file: Path,
                                                       tmp_path: Path) -> None:
    corpus = corpus_messages()
    first, second = corpus[:6] + generated()[:4], corpus[6:] + generated()[4:]
    maildir = write_maildir(tmp_path / "Maildir", first)
    mbox = write_mbox(tmp_path / "box.mbox", second)
    items = list(messages([str(maildir), str(mbox)]))
    skipped = [i for i in items if isinstance(i, Skipped)]
    sim = simulate(iter(items), load_rules(rules_file))
    check(sim, first + second)
    no_rcpt = [r for r in first + second if not expected_actions(r)]
    assert sim.skipped == len(skipped) == len(no_rcpt)
    assert all(s.reason == NO_RECIPIENTS for s in skipped)
    assert sim.messages + sim.skipped == len(first) + len(second)
    assert sim.reduction > 0  # the data does exercise diversion


def test_unreadable_empty_missing_and_recipientless_are_skipped_with_reasons(
        rules_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "mail"
    folder.mkdir()
    raws = generated()
    for index, raw in enumerate(raws):
        (folder / f"{index}.eml").write_bytes(raw)
    (folder / "empty.eml").write_bytes(b"")
    (folder / "notes.txt").write_bytes(b"just some text, not a message\n")
    (folder / ".hidden").write_bytes(raws[0])  # dot files are not read
    locked = folder / "locked.eml"
    locked.write_bytes(raws[0])
    real_read = pathlib.Path.read_bytes

    def read_bytes(self: pathlib.Path) -> bytes:
        if self.name == locked.name:  # root can read a mode-000 file: refuse it here instead
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)
    missing = tmp_path / "nowhere"
    code = main(["rules", "test", str(rules_file), "--data", str(folder),
                 "--data", str(missing), "--no-classify", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    totals = expected_counts(raws)[0]
    assert report["messages"] == totals.messages == len(raws)
    assert report["inbox_deliveries"]["before"] == totals.before
    assert report["shapes"] == {"relayed": 3, "posted_and_relayed": 2, "posted_only": 2}
    reasons = report["skipped"]["reasons"]
    assert reasons == {"unreadable: Permission denied": 1, "empty file": 1,
                       NO_RECIPIENTS: 1, "no such file or folder": 1}
    names = {e["name"]: e["reason"] for e in report["skipped"]["examples"]}
    assert names[f"{folder}/locked.eml"] == "unreadable: Permission denied"
    assert names[f"{folder}/notes.txt"] == NO_RECIPIENTS
    assert names[str(missing)] == "no such file or folder"


def test_cli_text_report(rules_file: Path, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    raws = generated()
    mbox = write_mbox(tmp_path / "box.mbox", raws)
    assert main(["rules", "test", str(rules_file), "--data", str(mbox), "--no-classify"]) == 0
    out = capsys.readouterr().out
    totals, actions, audit, _, _ = expected_counts(raws)
    reduction = totals.before - totals.after
    percent = 100 * reduction / totals.before
    assert (f"Inbox deliveries (internal recipients): {totals.before} -> {totals.after} "
            f"({reduction} fewer, {percent:.1f}%)") in out
    audit_reduction = totals.before - totals.after_audit
    assert (f"If the audit-mode rules were enforced too: {totals.before} -> "
            f"{totals.after_audit} ({audit_reduction} fewer, "
            f"{100 * audit_reduction / totals.before:.1f}%)") in out
    assert "To, Cc and Bcc (when present)" in out  # where the recipients came from
    assert "Classifier: off" in out
    section = out.split("Would do in audit mode")[1].split("\n\n")[0]
    assert [line.split() for line in section.splitlines()[1:]] == [
        [a, str(n)] for a, n in audit.items()]
    enforced = out.split("Per action (internal recipients, enforced rules):\n")[1]
    rows = dict(line.split() for line in enforced.split("Would do")[0].strip().splitlines())
    assert {a: int(n) for a, n in rows.items() if int(n)} == dict(actions)
    assert f"news{' ' * 2}" in out.split("Per destination (enforced):")[1]
    shapes = out.split("Per message (enforced rules):")[1].split("\n\n")[0]
    assert [line.split()[-1] for line in shapes.strip().splitlines()] == [
        str(totals.shapes[k]) for k in ("relayed", "posted_and_relayed", "posted_only")]


def test_cli_json_matches_the_text_and_rules_problems_fail(
        rules_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raws = generated()
    maildir = write_maildir(tmp_path / "Maildir", raws)
    assert main(["rules", "test", str(rules_file), "--data", str(maildir), "--no-classify",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    totals, _, audit, dests, diverted = expected_counts(raws)
    assert report["inbox_deliveries"] == {
        "before": totals.before, "after": totals.after,
        "reduction": totals.before - totals.after,
        "reduction_percent": round(100 * (totals.before - totals.after) / totals.before, 1)}
    assert report["audit"]["actions"] == dict(audit)
    assert report["audit"]["inbox_after_if_enforced"] == totals.after_audit
    assert {n: d["messages"] for n, d in report["destinations"].items()} == {
        n: c for (n, kind), c in dests.items() if kind == "messages"}
    assert {u: d["diverted"] + d["digest"] for u, d in report["users"].items()
            if d["diverted"] + d["digest"]} == dict(diverted)
    assert report["classified"] is False
    assert "Bcc" in report["envelope_note"]

    bad = tmp_path / "bad.yaml"
    bad.write_text("internal_domains: [example.com]\npolicy:\n  - {action: explode}\n")
    assert main(["rules", "test", str(bad), "--data", str(maildir), "--no-classify"]) == 1
    assert f"{bad}:3" in capsys.readouterr().err


def test_verdicts_counted_per_category_and_a_failing_classifier_skips(
        rules_file: Path) -> None:
    raws = generated()

    def classify(mail: Mail) -> Verdict | None:
        if mail.subject == "Minutes":
            raise RuntimeError("model exploded")
        category = "broadcast" if "news" in mail.subject.lower() else "discussion"
        return Verdict(category, 0.9, (), "test")

    sim = simulate((mail_from_file(r) for r in raws), load_rules(rules_file), classify)
    assert sim.classified
    assert sim.skip_reasons == {"classifier failed: RuntimeError": 1}
    assert sim.categories == {"discussion": len(raws) - 3, "broadcast": 2}
    assert sim.messages == len(raws) - 1


def test_streams_without_holding_messages(rules_file: Path) -> None:
    """The stream is consumed once, lazily; nothing but counters is kept."""
    rules = load_rules(rules_file)
    raw = generated()[0]
    consumed = 0

    def stream() -> Iterator[Mail]:
        nonlocal consumed
        for _ in range(2000):
            consumed += 1
            yield mail_from_file(raw)

    sim = simulate(stream(), rules)
    assert consumed == sim.messages == 2000
    assert sim.destinations["news"].messages == 2000
    assert len(sim.skipped_examples) == 0
    text = format_text(sim)
    assert "news" in text and json.dumps(to_json(sim))
