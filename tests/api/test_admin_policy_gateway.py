"""A policy saved through the admin API takes effect in the running gateway (production
hook, rules file, background reload every rules_reload_seconds), and handing it back to
the file takes the file's policy back."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from sluice.api import people
from sluice.api.app import create_app
from sluice.core.db import make_engine
from sluice.core.tables import MessageRecord, RecipientOutcome
from tests.servers import GatewayThread, gateway_settings

RULES = """\
internal_domains: [example.com]
destinations:
  updates: {kind: space}
policy:
  - {name: file-partners, match: {sender_domain: partner.example}, action: deliver}
"""
#: Waiting for the background reload, not timing it: a generous bound only against hangs.
WAIT_LIMIT = 60.0


def _send(port: int, sender: str, subject: str, message_id: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = (
        sender, "ann@example.com", subject, message_id)
    msg.set_content("Hello,\n\nnews.\n")
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.send_message(msg, to_addrs=["ann@example.com"])


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while not condition():
        assert time.monotonic() < deadline, "the gateway never reloaded the rules"
        time.sleep(0.05)


@pytest.fixture()
def gateway(tmp_path: Path) -> Iterator[GatewayThread]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    settings = gateway_settings(tmp_path, rules_file=rules, classify=False, worker=False,
                                rules_reload_seconds=0.1)
    thread = GatewayThread(settings, hook=None)  # the production hook: rules, reloads
    try:
        yield thread
    finally:
        thread.stop()


def test_policy_saved_in_the_api_takes_effect_in_the_running_gateway(
        gateway: GatewayThread) -> None:
    running = gateway.gateway
    assert running is not None
    engine = make_engine(gateway.settings)
    people.ensure_user(engine, "root@example.com", role="admin")
    admin = {"Authorization": f"Bearer {people.issue_token(engine, 'root@example.com', 'a')}"}
    client = TestClient(create_app(engine, gateway.settings))

    def outcome(message_id: str) -> RecipientOutcome:
        with Session(engine) as session:
            return session.exec(select(RecipientOutcome).join(
                MessageRecord, col(MessageRecord.id) == col(RecipientOutcome.message_pk)).where(
                col(MessageRecord.message_id) == message_id)).one()

    def policy_names() -> list[str]:
        return [rule.name for rule in running.rules.policy]

    _send(gateway.port, "news@vendor.example", "Vendor news 1", "<v1@vendor.example>")
    assert (outcome("<v1@vendor.example>").action, outcome("<v1@vendor.example>").rule) == (
        "deliver", "")

    saved = client.put("/api/admin/policy", headers=admin, json={"rules": [
        {"name": "vendors", "match": {"sender_domain": "vendor.example"}, "action": "divert",
         "to": "updates"}]})
    assert saved.status_code == 200, saved.text
    _wait_for(lambda: policy_names() == ["vendors"])
    _send(gateway.port, "news@vendor.example", "Vendor news 2", "<v2@vendor.example>")
    diverted = outcome("<v2@vendor.example>")
    assert (diverted.action, diverted.rule, diverted.destination) == (
        "divert", "vendors", "updates")

    assert client.delete("/api/admin/policy", headers=admin).status_code == 200
    _wait_for(lambda: policy_names() == ["file-partners"])
    _send(gateway.port, "news@vendor.example", "Vendor news 3", "<v3@vendor.example>")
    assert outcome("<v3@vendor.example>").rule == ""
    engine.dispose()
