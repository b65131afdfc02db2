"""Administration: members get 403, admins manage accounts, channels and see the policy."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from sluice.api import people
from sluice.api.app import create_app
from sluice.core.db import init_schema, make_engine
from sluice.core.settings import load_settings
from sluice.core.tables import MessageRecord, RecipientOutcome
from sluice.space import channels
from sluice.space.viewer import Viewer
from tests.webauth import sign_in

RULES = """\
internal_domains: [example.com]
destinations:
  updates: {kind: space}
policy:
  - {name: broadcasts, match: {category: broadcast}, action: divert, to: updates, mode: audit}
"""
PASSWORD = "admin page password"


@dataclass
class Setup:
    engine: Engine
    client: TestClient
    admin: dict[str, str]
    member: dict[str, str]


@pytest.fixture()
def setup(tmp_path: Path) -> Iterator[Setup]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    settings = load_settings(None, data_dir=tmp_path / "data", rules_file=rules)
    engine = make_engine(settings)
    init_schema(engine)
    people.ensure_user(engine, "root@example.com", role="admin", password=PASSWORD)
    people.ensure_user(engine, "ann@example.com", password=PASSWORD)
    from sqlmodel import Session

    with Session(engine) as session:  # a message recorded for someone without an account
        message = MessageRecord(fingerprint="f" * 64, header_from="ext@partner.example")
        session.add(message)
        session.flush()
        for rcpt in ("new.person@example.com", "ann@example.com", "x@partner.example"):
            session.add(RecipientOutcome(message_pk=message.id or 0, recipient=rcpt,
                                         status="delivered"))
        session.commit()
    yield Setup(engine, TestClient(create_app(engine, settings)),
                {"Authorization": f"Bearer {people.issue_token(engine, 'root@example.com', 'a')}"},
                {"Authorization": f"Bearer {people.issue_token(engine, 'ann@example.com', 'm')}"})
    engine.dispose()


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/api/admin/users", None),
    ("POST", "/api/admin/users", {"email": "z@example.com"}),
    ("PATCH", "/api/admin/users/root@example.com", {"role": "member"}),
    ("GET", "/api/admin/policy", None),
])
def test_members_get_403_and_anonymous_401(setup: Setup, method: str, path: str,
                                           body: object) -> None:
    assert setup.client.request(method, path, json=body, headers=setup.member
                                ).status_code == 403
    assert setup.client.request(method, path, json=body).status_code == 401


def test_member_pages_are_refused(setup: Setup) -> None:
    client = setup.client
    sign_in(client, "ann@example.com", PASSWORD)
    assert client.get("/admin").status_code == 403
    assert "/admin" not in client.get("/me/rules").text  # not in a member's navigation


def test_admin_lists_accounts_and_addresses_seen(setup: Setup) -> None:
    listing = setup.client.get("/api/admin/users", headers=setup.admin).json()
    assert [a["email"] for a in listing["accounts"]] == ["ann@example.com", "root@example.com"]
    assert listing["seen_without_account"] == ["new.person@example.com"]
    created = setup.client.post("/api/admin/users", headers=setup.admin, json={
        "email": "New.Person@example.com", "name": "New", "password": "first password"})
    assert created.status_code == 201 and created.json()["email"] == "new.person@example.com"
    assert setup.client.post("/api/admin/users", headers=setup.admin, json={
        "email": "new.person@example.com"}).status_code == 409
    assert setup.client.get("/api/admin/users", headers=setup.admin
                            ).json()["seen_without_account"] == []


def test_admin_changes_roles_and_deactivates(setup: Setup) -> None:
    client, admin = setup.client, setup.admin
    promoted = client.patch("/api/admin/users/ann@example.com", json={"role": "admin"},
                            headers=admin)
    assert promoted.json()["role"] == "admin"
    assert client.get("/api/admin/users", headers=setup.member).status_code == 200
    off = client.patch("/api/admin/users/ann@example.com", json={"active": False},
                       headers=admin)
    assert off.json()["active"] is False
    assert client.get("/api/me", headers=setup.member).status_code == 401
    assert client.patch("/api/admin/users/root@example.com", json={"role": "member"},
                        headers=admin).status_code == 409  # no lock-out
    assert client.patch("/api/admin/users/root@example.com", json={"active": False},
                        headers=admin).status_code == 409
    assert client.patch("/api/admin/users/ghost@example.com", json={"role": "admin"},
                        headers=admin).status_code == 404
    assert client.patch("/api/admin/users/ann@example.com", json={"role": "owner"},
                        headers=admin).status_code == 422


def test_admin_page_manages_users_and_channels(setup: Setup) -> None:
    client = setup.client
    csrf = sign_in(client, "root@example.com", PASSWORD)
    root = Viewer("root@example.com", "admin")
    channels.create_channel(setup.engine, root, "updates")
    page = client.get("/admin")
    assert page.status_code == 200
    assert "new.person@example.com" in page.text and "broadcasts" in page.text
    assert re.search(r"recipients only", page.text)
    assert client.post("/admin/channels", data={"name": "updates", "open": "yes"}
                       ).status_code == 403  # no CSRF token
    done = client.post("/admin/channels", data={"csrf_token": csrf, "name": "updates",
                                                "open": "yes"})
    assert done.status_code == 200 and "open to everyone" in done.text
    assert [c.open for c in channels.list_channels(setup.engine, root)] == [True]
    client.post("/admin/users", data={"csrf_token": csrf, "email": "ann@example.com",
                                      "role": "admin"})
    user = people.get_user(setup.engine, "ann@example.com")
    assert user is not None and user.role == "admin"
    refused = client.post("/admin/users", data={"csrf_token": csrf,
                                                "email": "root@example.com", "active": "no"})
    assert "cannot demote or deactivate yourself" in refused.text


def test_policy_shown_from_the_rules_file(setup: Setup) -> None:
    policy = setup.client.get("/api/admin/policy", headers=setup.admin).json()
    assert policy["internal_domains"] == ["example.com"]
    assert policy["policy"] == [{"name": "broadcasts", "match": {"category": "broadcast"},
                                 "action": "divert", "to": "updates", "mode": "audit"}]
