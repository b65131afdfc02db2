"""A small, hand-counted mail flow recorded by the real gateway, for the live-figure tests.

Four messages go through an in-process gateway with a rules file: diversions to the space,
a digest, a diversion to a webhook that is down (it falls back to mail), audit-mode rules
and an external recipient. The expected figures below are counted by hand from the rules.

| msg | subject        | category  | ann      | bob    | cem           | dia         | eli   |
|-----|----------------|-----------|----------|--------|---------------|-------------|-------|
| M1  | [FYI] Office   | broadcast | diverted | digest | hook→fallback | audit→inbox | inbox |
| M2  | [NEWS] Numbers | event     | audit    |        |               |             | audit |
| M3  | Meeting?       | direct    | inbox    |        |               |             |       |
| M4  | [FYI] Coffee   | broadcast | diverted | digest |               |             |       |

M1 also goes to ext@partner.test (external, never counted). Ann opens M1's post in the
space afterwards; nobody opens M4's. M3 is moved 9 days back so
that days and weeks have more than one bucket.
"""

from __future__ import annotations

import smtplib
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, select

from sluice.core.db import make_engine
from sluice.core.decision import RoutingDecision
from sluice.core.mail import Mail
from sluice.core.settings import Settings
from sluice.core.tables_space import SpacePost
from sluice.core.verdict import Verdict
from sluice.router.decide import decide
from sluice.router.rulesfile import load_rules
from sluice.space.posts import mark_read
from sluice.space.viewer import Viewer
from tests.servers import GatewayThread, HttpReceiver, gateway_settings

TEAM = ("ann@example.com", "bob@example.com", "cem@example.com", "dia@example.com",
        "eli@example.com")
EXTERNAL = "ext@partner.test"
#: M3 is recorded this many days before the others.
M3_DAYS_BACK = 9


def _message(sender: str, subject: str, number: int) -> bytes:
    return (f"From: {sender}\r\nTo: team@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: <live-{number}@example.com>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nHello,\r\nnews.\r\n").encode()


MESSAGES = (
    ("boss@example.com", [*TEAM, EXTERNAL], "[FYI] Office closed on Friday"),
    ("news@example.com", ["ann@example.com", "eli@example.com"], "[NEWS] Quarterly numbers"),
    ("carl@partner.test", ["ann@example.com"], "Meeting?"),
    ("boss@example.com", ["ann@example.com", "bob@example.com"], "[FYI] New coffee machine"),
)


def rules_text(webhook_url: str) -> str:
    fyi = '{match: {subject: "^\\\\[FYI\\\\]"}, '
    return (
        "internal_domains: [example.com]\n"
        "destinations:\n"
        "  team-space: {kind: space, channel: team-news}\n"
        f'  hook: {{kind: webhook, url: "{webhook_url}"}}\n'
        "policy:\n"
        '  - {match: {subject: "^\\\\[NEWS\\\\]"}, action: divert, to: team-space, '
        "mode: audit}\n"
        "users:\n"
        f"  ann@example.com:\n    - {fyi}action: divert, to: team-space}}\n"
        f"  bob@example.com:\n    - {fyi}action: digest, to: team-space}}\n"
        f"  cem@example.com:\n    - {fyi}action: divert, to: hook}}\n"
        f"  dia@example.com:\n    - {fyi}action: divert, to: team-space, mode: audit}}\n"
    )


def category_of(subject: str) -> str:
    """The verdict the test hook gives: fixed, so the figures are about counting."""
    if subject.startswith("[FYI]"):
        return "broadcast"
    if subject.startswith("[NEWS]"):
        return "event"
    return "direct"


@dataclass(frozen=True)
class Recorded:
    settings: Settings
    engine: Engine
    rules_file: Path
    #: When the messages other than M3 arrived (UTC).
    now: datetime


def record_scenario(folder: Path) -> Recorded:
    """Send the four messages through a real gateway and wait until the webhook fell back."""
    receiver = HttpReceiver()
    receiver.status = 503  # the webhook stays down: cem's copy falls back to mail
    rules = folder / "rules.yaml"
    rules.write_text(rules_text(receiver.url + "/hook"))
    ruleset = load_rules(rules)

    async def hook(mail: Mail, recipients: tuple[str, ...]) -> RoutingDecision:
        verdict = Verdict(category_of(mail.subject), 0.9, ("test verdict",), "test")
        return decide(mail, verdict, ruleset)

    settings = gateway_settings(folder, rules_file=rules, outbox_deadline=2.0)
    gateway = GatewayThread(settings, hook)
    try:
        with smtplib.SMTP("127.0.0.1", gateway.port) as client:
            for number, (sender, rcpts, subject) in enumerate(MESSAGES, start=1):
                assert client.sendmail(sender, rcpts, _message(sender, subject, number)) == {}
            # A client's retry of M4: recorded as duplicates, counted nowhere.
            sender, rcpts, subject = MESSAGES[3]
            assert client.sendmail(sender, rcpts, _message(sender, subject, 4)) == {}
        _wait_for_jobs(folder / "data" / "sluice.db")
    finally:
        gateway.stop()
        receiver.stop()
    db = sqlite3.connect(folder / "data" / "sluice.db")
    try:
        moved = (datetime.now(UTC) - timedelta(days=M3_DAYS_BACK)).replace(tzinfo=None)
        db.execute("update message set received_at = ? where message_id = ?",
                   (moved.strftime("%Y-%m-%d %H:%M:%S.%f"), "<live-3@example.com>"))
        db.commit()
    finally:
        db.close()
    engine = make_engine(settings)
    _ann_reads_the_first_post(engine)
    return Recorded(settings, engine, rules, datetime.now(UTC))


def _ann_reads_the_first_post(engine: Engine) -> None:
    """Ann opens M1's post in the space; bob reads nothing (M4's post stays unread)."""
    with engine.connect() as conn:
        post_id = conn.execute(select(SpacePost.id).where(  # type: ignore[call-overload]
            SpacePost.message_id == "<live-1@example.com>")).scalar_one()
    mark_read(engine, Viewer("ann@example.com"), post_id, True)


def _wait_for_jobs(db_path: Path, timeout: float = 30.0) -> None:
    """Until the space's job is done and the webhook's job fell back to mail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db = sqlite3.connect(db_path)
        states = dict(db.execute("select destination, state from outbox_job "
                                 "where state != 'pending'").fetchall())
        db.close()
        if states.get("hook") == "fallback" and states.get("team-space") == "done":
            pending = _count(db_path, "select count(*) from outbox_job where state='pending'")
            if pending == 0:
                return
        time.sleep(0.1)
    raise TimeoutError("the outbox jobs did not settle")


def _count(db_path: Path, query: str) -> int:
    db = sqlite3.connect(db_path)
    try:
        return int(db.execute(query).fetchone()[0])
    finally:
        db.close()
