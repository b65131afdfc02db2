"""My rules and my mail, on mail recorded by the real gateway with the production wiring."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from sluice.api import people
from sluice.api.app import create_app
from sluice.core.db import make_engine
from sluice.core.settings import Settings
from sluice.core.tables import Correction, MessageRecord, RecipientOutcome
from tests.servers import GatewayThread, gateway_settings
from tests.webauth import sign_in

RULES = """\
internal_domains: [example.com]
destinations:
  team: {kind: space}
  updates: {kind: space}
policy:
  - name: updates
    match: {sender_domain: example.com, subject: "^\\\\[update\\\\]"}
    action: divert
    to: updates
"""
PASSWORD = "my rules password"


def _message(sender: str, to: list[str], subject: str, message_id: str,
             attachment: bool = False) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = (
        sender, ", ".join(to), subject, message_id)
    msg.set_content("Hello,\n\nsee below.\n")
    if attachment:
        msg.add_attachment(b"%PDF-1.4 numbers", maintype="application", subtype="pdf",
                           filename="numbers.pdf")
    return msg


def _send(port: int, msg: EmailMessage, rcpts: list[str]) -> None:
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.send_message(msg, to_addrs=rcpts)


@dataclass
class World:
    settings: Settings
    gateway: GatewayThread
    engine: Engine
    client: TestClient
    ann: dict[str, str]
    bob: dict[str, str]


@pytest.fixture()
def world(tmp_path: Path) -> Iterator[World]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    settings = gateway_settings(tmp_path, rules_file=rules, classify=False, worker=False,
                                rules_reload_seconds=0)
    gateway = GatewayThread(settings, hook=None)  # the production hook: rules, reloads
    try:
        port = gateway.port
        _send(port, _message("boss@example.com", ["ann@example.com", "bob@example.com"],
                             "[update] Q3 numbers", "<m1@example.com>"),
              ["ann@example.com", "bob@example.com"])
        _send(port, _message("news@vendor.example", ["ann@example.com"],
                             "Weekly vendor news", "<m2@vendor.example>", attachment=True),
              ["ann@example.com"])
        _send(port, _message("news@vendor.example", ["ann@example.com"], "Vendor webinar",
                             "<m3@vendor.example>"), ["ann@example.com"])
        _send(port, _message("carol@example.com", ["bob@example.com"], "[update] other",
                             "<m4@example.com>"), ["bob@example.com"])
        engine = make_engine(settings)
        for email in ("ann@example.com", "bob@example.com"):
            people.ensure_user(engine, email, password=PASSWORD)
        ann = {"Authorization": f"Bearer {people.issue_token(engine, 'ann@example.com', 't')}"}
        bob = {"Authorization": f"Bearer {people.issue_token(engine, 'bob@example.com', 't')}"}
        yield World(settings, gateway, engine, TestClient(create_app(engine, settings)),
                    ann, bob)
        engine.dispose()
    finally:
        gateway.stop()


VENDOR_RULES = [
    {"name": "vendors", "match": {"sender_domain": "vendor.example"}, "action": "divert",
     "to": "team"},
    {"match": {"subject": "numbers"}, "action": "deliver"},
    {"name": "by-category", "match": {"category": "broadcast"}, "action": "deliver"},
]


def test_rules_saved_with_a_preview_counted_from_the_records(world: World) -> None:
    empty = world.client.get("/api/me/rules", headers=world.ann).json()
    assert empty["rules"] == [] and empty["destinations"] == ["team", "updates"]
    assert empty["preview"]["messages"] == 3  # m1, m2, m3 were sent to ann; m4 was not

    saved = world.client.put("/api/me/rules", json={"rules": VENDOR_RULES}, headers=world.ann)
    assert saved.status_code == 200, saved.text
    preview = saved.json()["preview"]
    counts = {r["name"]: r["matched"] for r in preview["rules"]}
    assert counts == {"vendors": 2, "ann@example.com#2": 1, "by-category": 0}
    assert preview["unclassified"] == 3
    notes = {r["name"]: r["notes"] for r in preview["rules"]}
    assert "without a category" in notes["by-category"][0]
    assert notes["vendors"] == []

    again = world.client.get("/api/me/rules", headers=world.ann).json()
    assert [r.get("name") for r in again["rules"]] == ["vendors", "ann@example.com#2",
                                                       "by-category"]
    # Bob's rules are his own.
    assert world.client.get("/api/me/rules", headers=world.bob).json()["rules"] == []
    only_bob = world.client.get("/api/me/rules", headers=world.bob).json()["preview"]
    assert only_bob["messages"] == 2


def test_preview_does_not_save(world: World) -> None:
    response = world.client.post("/api/me/rules/preview", json={"rules": VENDOR_RULES[:1]},
                                 headers=world.ann)
    assert response.json()["preview"]["rules"][0]["matched"] == 2
    assert world.client.get("/api/me/rules", headers=world.ann).json()["rules"] == []


@pytest.mark.parametrize(("rule", "problem"), [
    ({"match": {}, "action": "divert", "to": "nowhere"},
     "rule 1: unknown destination 'nowhere' (known: team, updates)"),
    ({"match": {}, "action": "explode", "to": "team"},
     "rule 1: unknown action 'explode' (known: deliver, divert, digest, copy)"),
    ({"match": {"subject": "(unclosed"}, "action": "divert", "to": "team"},
     "rule 1: bad regular expression '(unclosed' in subject"),
    ({"match": {"colour": "red"}, "action": "deliver"},
     "rule 1: unknown match key 'colour'"),
    ({"match": {"category": "broadcast"}, "action": "divert"},
     "rule 1: divert needs 'to': the destination to post to"),
])
def test_rules_checked_like_the_rules_file(world: World, rule: dict[str, object],
                                           problem: str) -> None:
    response = world.client.put("/api/me/rules", json={"rules": [rule]}, headers=world.ann)
    assert response.status_code == 422
    problems = response.json()["detail"]["problems"]
    assert any(p.startswith(problem) for p in problems), problems
    assert world.client.get("/api/me/rules", headers=world.ann).json()["rules"] == []


def test_conflict_with_the_policy_is_refused(world: World) -> None:
    rule = {"name": "mine", "match": {"subject": "update"}, "action": "divert", "to": "team"}
    response = world.client.put("/api/me/rules", json={"rules": [rule]}, headers=world.ann)
    assert response.status_code == 422
    assert "two destinations, 'team' and 'updates'" in response.json()["detail"]["problems"][0]


def test_saved_rules_take_effect_in_the_running_gateway(world: World) -> None:
    gateway = world.gateway.gateway
    assert gateway is not None
    assert world.gateway.call(gateway.reload_rules()) is False  # nothing changed yet
    world.client.put("/api/me/rules", json={"rules": VENDOR_RULES[:1]}, headers=world.ann)
    assert world.gateway.call(gateway.reload_rules()) is True
    _send(world.gateway.port, _message("news@vendor.example", ["ann@example.com"],
                                       "Vendor news 2", "<m5@vendor.example>"),
          ["ann@example.com"])
    with Session(world.engine) as session:
        outcome = session.exec(select(RecipientOutcome).join(
            MessageRecord, col(MessageRecord.id) == col(RecipientOutcome.message_pk)).where(
            col(MessageRecord.message_id) == "<m5@vendor.example>")).one()
    assert (outcome.action, outcome.rule, outcome.destination) == ("divert", "vendors", "team")


def test_my_mail_shows_my_diverted_mail_and_records_corrections(world: World) -> None:
    mail = world.client.get("/api/me/mail", headers=world.ann).json()
    assert [t["message_id"] for t in mail] == ["<m1@example.com>"]
    assert [(line["recipient"], line["rule"]) for line in mail[0]["lines"]] == [
        ("ann@example.com", "updates")]  # only ann's own line, not bob's

    response = world.client.post("/api/me/corrections", headers=world.ann,
                                 json={"message_id": "<m1@example.com>", "category": "direct"})
    assert response.status_code == 201, response.text
    with Session(world.engine) as session:
        correction = session.exec(select(Correction)).one()
    assert (correction.category, correction.corrected_by) == ("direct", "ann@example.com")
    assert b"Subject: [update] Q3 numbers" in correction.raw

    def attempt(headers: dict[str, str], message_id: str, category: str = "event") -> int:
        return world.client.post("/api/me/corrections", headers=headers, json={
            "message_id": message_id, "category": category}).status_code

    assert attempt(world.ann, "<m2@vendor.example>") == 409  # stayed mail: not kept
    assert attempt(world.ann, "<m4@example.com>") == 404  # bob's, not ann's
    assert attempt(world.ann, "<m1@example.com>", "spam") == 422


def test_pages_edit_rules_and_correct_mail(world: World) -> None:
    client = world.client
    csrf = sign_in(client, "ann@example.com", PASSWORD)
    page = client.get("/me/rules")
    assert page.status_code == 200 and "team, updates" in page.text
    bad = client.post("/me/rules", data={"csrf_token": csrf, "intent": "save",
                                         "rules_yaml": "- {match: {}, action: [divert"})
    assert bad.status_code == 422 and "not valid YAML" in bad.text
    good = client.post("/me/rules", data={
        "csrf_token": csrf, "intent": "save",
        "rules_yaml": "- {name: vendors, match: {sender_domain: vendor.example}, "
                      "action: divert, to: team}"})
    assert good.status_code == 200 and "Saved." in good.text
    assert "2 of your last 30 days' 3 mails" in good.text
    assert client.post("/me/rules", data={"rules_yaml": ""}).status_code == 403  # no CSRF

    mail = client.get("/me/mail")
    assert "[update] Q3 numbers" in mail.text
    done = client.post("/me/mail/corrections", data={
        "csrf_token": csrf, "message_id": "<m1@example.com>", "category": "event"})
    assert done.status_code == 200 and "Thanks: noted that" in done.text
    with Session(world.engine) as session:
        assert session.exec(select(Correction.category)).one() == "event"
