"""The organisation policy edited by admins: access, CSRF, checks like the rules file's,
conflicts naming both rules, preview, audit trail, export, and users' rules checked against
the policy in force."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from sluice.api import people
from sluice.api.app import create_app
from sluice.core.db import init_schema, make_engine
from sluice.core.settings import load_settings
from sluice.core.tables import MessageRecord, RecipientOutcome
from sluice.router.rulesfile import parse_rules
from tests.webauth import page_csrf_token, sign_in

RULES = """\
internal_domains: [example.com]
destinations:
  updates: {kind: space}
  team: {kind: space}
policy:
  - {name: broadcasts, match: {category: broadcast}, action: divert, to: updates, mode: audit}
users:
  bob@example.com:
    - {name: bob-partners, match: {sender_domain: partner.example}, action: divert, to: team}
"""
PASSWORD = "admin policy password"
ROOT, ANN, BOB = "root@example.com", "ann@example.com", "bob@example.com"
NEW_POLICY = [
    {"name": "big-broadcasts", "match": {"category": "broadcast", "min_recipients": 3,
                                         "sender_domain": "example.com"},
     "action": "divert", "to": "updates"},
    {"match": {"sender_domain": "vendor.example"}, "action": "digest", "to": "updates",
     "mode": "audit"},
]


@dataclass
class Setup:
    engine: Engine
    client: TestClient
    admin: dict[str, str]
    member: dict[str, str]
    rules_file: Path


def _record(session: Session, n: int, sender: str, category: str | None, to_count: int,
            recipients: tuple[str, ...]) -> None:
    message = MessageRecord(fingerprint=f"{n:064d}", message_id=f"<m{n}@test>",
                            mail_from=sender, header_from=sender, subject=f"message {n}",
                            category=category, confidence=0.9 if category else None,
                            to_count=to_count, rcpt_count=len(recipients))
    session.add(message)
    session.flush()
    for rcpt in recipients:
        session.add(RecipientOutcome(message_pk=message.id or 0, recipient=rcpt,
                                     status="delivered"))


@pytest.fixture()
def setup(tmp_path: Path) -> Iterator[Setup]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    settings = load_settings(None, data_dir=tmp_path / "data", rules_file=rules)
    engine = make_engine(settings)
    init_schema(engine)
    people.ensure_user(engine, ROOT, role="admin", password=PASSWORD)
    people.ensure_user(engine, ANN, password=PASSWORD)
    with Session(engine) as session:
        # A cc-to-all broadcast to ann, bob and an outsider; a vendor newsletter to ann;
        # partner mail to bob (his own rule decides it); unclassified mail to ann.
        _record(session, 1, "boss@example.com", "broadcast", 5, (ANN, BOB, "x@other.example"))
        _record(session, 2, "news@vendor.example", "broadcast", 1, (ANN,))
        _record(session, 3, "sales@partner.example", "broadcast", 4, (BOB,))
        _record(session, 4, "who@example.com", None, 6, (ANN,))
        session.commit()
    yield Setup(engine, TestClient(create_app(engine, settings)),
                {"Authorization": f"Bearer {people.issue_token(engine, ROOT, 'a')}"},
                {"Authorization": f"Bearer {people.issue_token(engine, ANN, 'm')}"}, rules)
    engine.dispose()


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/api/admin/policy", None),
    ("PUT", "/api/admin/policy", {"rules": NEW_POLICY}),
    ("POST", "/api/admin/policy/preview", {"rules": NEW_POLICY}),
    ("DELETE", "/api/admin/policy", None),
    ("GET", "/api/admin/rules/changes", None),
    ("GET", "/api/admin/rules/export", None),
])
def test_members_get_403_and_anonymous_401(setup: Setup, method: str, path: str,
                                           body: object) -> None:
    assert setup.client.request(method, path, json=body, headers=setup.member
                                ).status_code == 403
    assert setup.client.request(method, path, json=body).status_code == 401
    assert setup.client.get("/api/admin/policy", headers=setup.admin
                            ).json()["source"] == "file"  # nothing was changed


def test_put_needs_the_csrf_token_with_a_session_cookie(setup: Setup) -> None:
    client = setup.client
    sign_in(client, ROOT, PASSWORD)
    token = page_csrf_token(client, "/admin")
    refused = client.put("/api/admin/policy", json={"rules": NEW_POLICY})
    assert refused.status_code == 403
    wrong = client.put("/api/admin/policy", json={"rules": NEW_POLICY},
                       headers={"X-CSRF-Token": token + "x"})
    assert wrong.status_code == 403
    assert client.get("/api/admin/policy").json()["source"] == "file"
    saved = client.put("/api/admin/policy", json={"rules": NEW_POLICY},
                       headers={"X-CSRF-Token": token})
    assert saved.status_code == 200, saved.text
    assert client.delete("/api/admin/policy").status_code == 403


def test_saved_policy_is_in_force_with_who_and_when(setup: Setup) -> None:
    client, admin = setup.client, setup.admin
    before = client.get("/api/admin/policy", headers=admin).json()
    assert before["source"] == "file" and [r["name"] for r in before["policy"]] == ["broadcasts"]
    saved = client.put("/api/admin/policy", json={"rules": NEW_POLICY}, headers=admin)
    assert saved.status_code == 200, saved.text
    state = client.get("/api/admin/policy", headers=admin).json()
    assert state["source"] == "database" and state["stored_by"] == ROOT
    assert state["policy"] == [
        {"name": "big-broadcasts", "match": {"category": "broadcast",
                                             "sender_domain": "example.com",
                                             "min_recipients": 3},
         "action": "divert", "to": "updates", "mode": "enforce"},
        {"name": "policy#2", "match": {"sender_domain": "vendor.example"}, "action": "digest",
         "to": "updates", "mode": "audit"}]
    assert [r["name"] for r in state["file_policy"]] == ["broadcasts"]
    assert state["destinations"] == ["team", "updates"]


def test_preview_counts_recorded_deliveries_with_users_rules_first(setup: Setup) -> None:
    response = setup.client.post("/api/admin/policy/preview", json={"rules": NEW_POLICY},
                                 headers=setup.admin)
    assert response.status_code == 200, response.text
    preview = response.json()["preview"]
    # Internal deliveries: m1 to ann and bob, m2 to ann, m3 to bob, m4 to ann.
    assert (preview["messages"], preview["deliveries"], preview["unclassified"]) == (4, 5, 1)
    counts = {r["name"]: r["matched"] for r in preview["rules"]}
    # m1 (5 addressees) for ann and bob; m3 has 4 but bob's own rule takes partner mail;
    # m2 has one addressee, so the vendor rule takes it.
    assert counts == {"big-broadcasts": 2, "policy#2": 1}
    notes = {r["name"]: r["notes"] for r in preview["rules"]}
    assert "without a category" in notes["big-broadcasts"][0]
    assert "audit mode" in notes["policy#2"][-1]
    assert setup.client.get("/api/admin/policy", headers=setup.admin
                            ).json()["source"] == "file"  # a preview saves nothing


@pytest.mark.parametrize(("rule", "problem"), [
    ({"match": {}, "action": "divert", "to": "nowhere"},
     "rule 1: unknown destination 'nowhere' (known: updates, team)"),
    ({"match": {}, "action": "explode", "to": "team"},
     "rule 1: unknown action 'explode' (known: deliver, divert, digest, copy)"),
    ({"match": {"subject": "(unclosed"}, "action": "divert", "to": "team"},
     "rule 1: bad regular expression '(unclosed' in subject"),
    ({"match": {"colour": "red"}, "action": "deliver"},
     "rule 1: unknown match key 'colour'"),
    ({"match": {"category": "direct"}, "action": "divert", "to": "team"},
     "rule 1: the policy never diverts direct mail"),
    ({"match": {"category": "broadcast"}, "action": "divert", "mode": "sometimes",
      "to": "updates"}, "rule 1: unknown mode 'sometimes' (known: enforce, audit)"),
])
def test_invalid_rules_are_refused_with_the_rules_files_messages(
        setup: Setup, rule: dict[str, object], problem: str) -> None:
    response = setup.client.put("/api/admin/policy", json={"rules": [rule]},
                                headers=setup.admin)
    assert response.status_code == 422
    problems = response.json()["detail"]["problems"]
    assert any(p.startswith(problem) for p in problems), problems
    assert setup.client.get("/api/admin/policy", headers=setup.admin
                            ).json()["source"] == "file"


def test_yaml_problems_name_the_line(setup: Setup) -> None:
    text = "- {match: {category: broadcast}, action: divert, to: updates}\n- {match: [\n"
    response = setup.client.put("/api/admin/policy", json={"rules_yaml": text},
                                headers=setup.admin)
    assert response.status_code == 422
    [problem] = response.json()["detail"]["problems"]
    assert problem.startswith("policy (line 3): not valid YAML")
    assert setup.client.put("/api/admin/policy", json={}, headers=setup.admin
                            ).status_code == 422  # neither rules nor rules_yaml


def test_conflict_with_a_users_rule_is_refused_naming_both(setup: Setup) -> None:
    clash = {"name": "partners-to-updates", "match": {"sender_domain": "partner.example"},
             "action": "divert", "to": "updates"}
    response = setup.client.put("/api/admin/policy", json={"rules": [clash]},
                                headers=setup.admin)
    assert response.status_code == 422
    assert response.json()["detail"]["problems"] == [
        "policy: rules 'bob-partners' and 'partners-to-updates' send mail of any category but "
        "direct for bob@example.com to two destinations, 'team' and 'updates'"]


def test_conflict_within_the_policy_is_refused_naming_both(setup: Setup) -> None:
    inside = {"category": "broadcast", "sender_domain": "example.com"}
    rules = [{"name": "a", "match": inside, "action": "divert", "to": "updates"},
             {"name": "b", "match": inside | {"has_attachment": True}, "action": "copy",
              "to": "team"}]
    response = setup.client.put("/api/admin/policy", json={"rules": rules},
                                headers=setup.admin)
    assert response.status_code == 422
    [problem] = response.json()["detail"]["problems"]
    assert "rules 'a' and 'b' send broadcast mail for every user" in problem


def test_users_rules_are_checked_against_the_policy_in_force(setup: Setup) -> None:
    mine = {"name": "ann-broadcasts", "match": {"category": "broadcast"}, "action": "divert",
            "to": "team"}
    # The file's policy is in audit mode: no conflict yet.
    assert setup.client.post("/api/me/rules/preview", json={"rules": [mine]},
                             headers=setup.member).status_code == 200
    setup.client.put("/api/admin/policy", json={"rules": NEW_POLICY}, headers=setup.admin)
    refused = setup.client.put("/api/me/rules", json={"rules": [mine]}, headers=setup.member)
    assert refused.status_code == 422
    assert "'ann-broadcasts' and 'big-broadcasts'" in refused.json()["detail"]["problems"][0]


def test_users_empty_list_and_policy_changes_are_in_the_audit_trail(setup: Setup) -> None:
    client = setup.client
    people.ensure_user(setup.engine, BOB)
    bob = {"Authorization": f"Bearer {people.issue_token(setup.engine, BOB, 'b')}"}
    assert client.get("/api/me/rules", headers=bob).json()["rules"][0]["name"] == "bob-partners"
    assert client.put("/api/me/rules", json={"rules": []}, headers=bob).status_code == 200
    assert client.get("/api/me/rules", headers=bob).json()["rules"] == []  # not the file's
    client.put("/api/admin/policy", json={"rules": NEW_POLICY}, headers=setup.admin)
    # With bob's partner rule gone, partner mail may now go elsewhere by policy.
    clash = [{"name": "partners", "match": {"sender_domain": "partner.example"},
              "action": "divert", "to": "updates"}]
    assert client.put("/api/admin/policy", json={"rules": clash},
                      headers=setup.admin).status_code == 200
    restored = client.delete("/api/admin/policy", headers=setup.admin)
    assert restored.status_code == 200 and restored.json()["source"] == "file"
    changes = client.get("/api/admin/rules/changes", headers=setup.admin).json()
    assert [(c["owner"], c["by"], c["change"], c["names"]) for c in changes] == [
        ("policy", ROOT, "restored", []),
        ("policy", ROOT, "replaced", ["partners"]),
        ("policy", ROOT, "replaced", ["big-broadcasts", "policy#2"]),
        (BOB, BOB, "replaced", [])]
    assert len(client.get("/api/admin/rules/changes?limit=1", headers=setup.admin).json()) == 1


def test_restoring_the_files_policy_is_refused_when_it_conflicts(setup: Setup) -> None:
    client = setup.client
    client.put("/api/admin/policy", json={"rules": []}, headers=setup.admin)
    assert client.get("/api/admin/policy", headers=setup.admin).json()["policy"] == []
    # ann's rule fits the (empty) stored policy, not the file's once it is enforced.
    setup.rules_file.write_text(RULES.replace(
        "match: {category: broadcast}, action: divert, to: updates, mode: audit",
        "match: {category: broadcast, sender_domain: example.com}, action: divert, "
        "to: updates"))
    mine = {"name": "ann-broadcasts", "match": {"category": "broadcast"}, "action": "divert",
            "to": "team"}
    assert client.put("/api/me/rules", json={"rules": [mine]},
                      headers=setup.member).status_code == 200
    refused = client.delete("/api/admin/policy", headers=setup.admin)
    assert refused.status_code == 409
    assert "'ann-broadcasts' and 'broadcasts'" in refused.json()["detail"]["problems"][0]
    assert client.get("/api/admin/policy", headers=setup.admin).json()["source"] == "database"


def _export(client: TestClient, headers: dict[str, str]) -> Any:
    response = client.get("/api/admin/rules/export", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/yaml")
    assert "attachment" in response.headers["content-disposition"]
    return response


def test_export_round_trips_through_sluice_rules_check(setup: Setup, tmp_path: Path) -> None:
    client = setup.client
    client.put("/api/admin/policy", json={"rules": NEW_POLICY}, headers=setup.admin)
    ann_rules = [{"name": "keep-events", "match": {"category": "event"}, "action": "deliver"}]
    client.put("/api/me/rules", json={"rules": ann_rules}, headers=setup.member)
    text = _export(client, setup.admin).text
    exported = tmp_path / "exported.yaml"
    exported.write_text(text)
    check = subprocess.run([sys.executable, "-m", "sluice.cli", "rules", "check",
                            str(exported)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "OK (2 policy rules, 2 users, 2 destinations)" in check.stdout
    rules = parse_rules(text)
    assert [r.name for r in rules.policy] == ["big-broadcasts", "policy#2"]
    assert [r.name for r in rules.rules_for(ANN)] == ["keep-events"]
    assert [r.name for r in rules.rules_for(BOB)] == ["bob-partners"]
    # Used as the rules file, the export is what the web app shows in force.
    setup.rules_file.write_text(text)
    client.delete("/api/admin/policy", headers=setup.admin)
    state = client.get("/api/admin/policy", headers=setup.admin).json()
    assert [r["name"] for r in state["policy"]] == ["big-broadcasts", "policy#2"]


def test_admin_page_has_the_editor_export_and_changes(setup: Setup) -> None:
    client = setup.client
    sign_in(client, ROOT, PASSWORD)
    token = page_csrf_token(client, "/admin")
    page = client.get("/admin").text
    assert '<script src="/static/admin.js" defer></script>' in page
    assert 'id="policy-yaml"' in page and "/api/admin/rules/export" in page
    assert "policy of the rules file" in page and "always come from the rules file" in page
    assert "<script>" not in page and "onclick" not in page
    assert "No rules changed in the web app yet." in page
    client.put("/api/admin/policy", json={"rules_yaml": "- {name: hostile-<b>x</b>, match: "
                                          "{category: broadcast}, action: deliver}\n"},
               headers={"X-CSRF-Token": token})
    page = client.get("/admin?notice=Policy+saved").text
    assert "the policy saved here" in page and f"by {ROOT}" in page
    assert "hostile-&lt;b&gt;x&lt;/b&gt;" in page and "hostile-<b>" not in page
    assert "organisation policy" in page and "Use the rules file's policy again" in page
    assert 'role="status">Policy saved</div>' in page
    script = client.get("/static/admin.js")
    assert script.status_code == 200 and "/api/admin/policy/preview" in script.text
    assert "innerHTML" not in script.text
