"""The dashboard: who sees which figures, the privacy floor, exports, charts, no scripts."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from sluice.api.app import create_app
from sluice.api.people import ensure_user, issue_token
from sluice.api.routes.dashboard import safe_cell
from sluice.core.tables_analysis import AnalysisCategory, AnalysisRun
from tests.reports.scenario import TEAM, Recorded, record_scenario

ADMIN = "boss-admin@example.com"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    result = record_scenario(tmp_path_factory.mktemp("dashboard"))
    ensure_user(result.engine, "ann@example.com")
    ensure_user(result.engine, ADMIN, role="admin")
    with Session(result.engine) as session:  # an analysis run: the dashboard's baseline
        now = datetime.now(UTC)
        run = AnalysisRun(source="maildir:old", started_at=now - timedelta(hours=1),
                          finished_at=now, messages=200, deliveries=1000,
                          diverted_deliveries=350, reduction_percent=35.0,
                          report_json="{}")
        session.add(run)
        session.flush()
        assert run.id is not None
        session.add(AnalysisCategory(run_id=run.id, category="broadcast", messages=50,
                                     deliveries=400, diverted_deliveries=300))
        session.commit()
    yield result
    result.engine.dispose()


@pytest.fixture(scope="module")
def client(recorded: Recorded) -> TestClient:
    return TestClient(create_app(recorded.engine, recorded.settings))


def auth(recorded: Recorded, email: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(recorded.engine, email, 'test')}"}


def test_anonymous_gets_nothing(client: TestClient) -> None:
    assert client.get("/api/dashboard/figures").status_code == 401
    assert client.get("/api/dashboard/export.csv").status_code == 401
    assert client.get("/dashboard/charts/reduction.svg").status_code == 401
    page = client.get("/dashboard", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")


def test_a_member_sees_their_own_figures(client: TestClient, recorded: Recorded) -> None:
    headers = auth(recorded, "ann@example.com")
    data = client.get("/api/dashboard/figures", headers=headers).json()
    assert data["recipient"] == "ann@example.com"
    assert data["totals"]["inbox"] == 2 and data["totals"]["diverted"] == 2
    assert list(data["by_user"]) == ["ann@example.com"]
    assert client.get("/api/dashboard/figures", params={"user": "bob@example.com"},
                      headers=headers).status_code == 403
    # Her own address in any case is hers.
    assert client.get("/api/dashboard/figures", params={"user": "Ann@Example.com"},
                      headers=headers).status_code == 200


def test_an_admin_sees_everyone_or_one_person(client: TestClient, recorded: Recorded) -> None:
    headers = auth(recorded, ADMIN)
    data = client.get("/api/dashboard/figures", headers=headers).json()
    assert data["recipient"] is None
    assert data["totals"]["reduction_percent"] == 40.0
    assert sorted(data["by_user"]) == sorted(TEAM)
    bob = client.get("/api/dashboard/figures", params={"user": "bob@example.com"},
                     headers=headers).json()
    assert bob["totals"]["diverted"] == 2 and list(bob["by_user"]) == ["bob@example.com"]
    assert data["baseline"]["reduction_percent"] == 35.0
    assert data["baseline"]["by_category"]["broadcast"]["reduction_percent"] == 75.0
    assert data["space"] == {"diverted_to_space": 4, "read": 1, "read_percent": 25.0}


def test_period_parameters(client: TestClient, recorded: Recorded) -> None:
    headers = auth(recorded, ADMIN)
    today = datetime.now(UTC).date()
    week = client.get("/api/dashboard/figures", headers=headers, params={
        "since": (today - timedelta(days=2)).isoformat(), "until": today.isoformat(),
        "bucket": "week"}).json()
    assert week["totals"]["messages"] == 3  # M3 is nine days old
    assert len(week["by_day"]) == 3
    bad = client.get("/api/dashboard/figures", headers=headers, params={
        "since": today.isoformat(), "until": (today - timedelta(days=1)).isoformat()})
    assert bad.status_code == 422
    assert client.get("/api/dashboard/figures", headers=headers,
                      params={"days": 5000}).status_code == 422


def test_small_groups_are_hidden(recorded: Recorded) -> None:
    strict = recorded.settings.model_copy(update={"privacy_min_group": 6})
    client = TestClient(create_app(recorded.engine, strict))
    headers = auth(recorded, ADMIN)
    data = client.get("/api/dashboard/figures", headers=headers).json()
    assert data["by_domain"] == [{"name": "example.com", "people": 5, "figures": None}]
    page = client.get("/dashboard", headers=headers).text
    assert "fewer than 6 people: not shown" in page
    relaxed = TestClient(create_app(recorded.engine, recorded.settings))
    shown = relaxed.get("/api/dashboard/figures", headers=headers).json()["by_domain"]
    assert shown[0]["figures"]["diverted"] == 4


def test_teams_from_the_settings(recorded: Recorded) -> None:
    teams = {"ops": ["cem@example.com", "dia@example.com", "eli@example.com"],
             "sales": ["ann@example.com", "bob@example.com"]}
    settings = recorded.settings.model_copy(update={"teams": teams, "privacy_min_group": 3})
    client = TestClient(create_app(recorded.engine, settings))
    data = client.get("/api/dashboard/figures", headers=auth(recorded, ADMIN)).json()
    assert [(t["name"], t["people"], t["figures"] is None) for t in data["by_team"]] == [
        ("ops", 3, False), ("sales", 2, True)]


def test_exports_parse(client: TestClient, recorded: Recorded) -> None:
    headers = auth(recorded, ADMIN)
    response = client.get("/api/dashboard/export.csv", headers=headers)
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][:4] == ["table", "key", "messages", "inbox"]
    assert ["totals", "all", "4", "6", "4", "1", "3", "40.0", "30.0"] in rows
    exported = client.get("/api/dashboard/export.json", headers=headers).json()
    assert exported["totals"]["diverted"] == 4
    assert exported["by_destination"]["team-space"]["diverted"] == 4


def test_csv_cells_cannot_become_formulas() -> None:
    assert safe_cell("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert safe_cell("ann@example.com") == "ann@example.com"
    assert safe_cell(-3) == -3


def test_page_has_charts_and_no_inline_script(client: TestClient, recorded: Recorded) -> None:
    headers = auth(recorded, ADMIN)
    page = client.get("/dashboard", headers=headers)
    assert page.status_code == 200
    html = page.text
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all(re.search(r'src="/static/[\w.-]+\.js"', s) for s in scripts)
    assert re.search(r"<script\b[^>]*>\s*[^<\s]", html) is None  # no inline code anywhere
    assert " style=" not in html and "<style" not in html
    charts = re.findall(r'<img src="(/dashboard/charts/\w+\.svg\?[^"]*)"', html)
    assert len(charts) == 5
    assert "40.0%" in html and "35.0%" in html  # the reduction and the baseline
    assert "would divert <b>3</b> more inbox deliveries" in html  # audit-mode what-if
    assert "policy#1" in html and "25.0%" in html  # an audit rule; read in the space
    for url in charts:
        svg = client.get(url.replace("&amp;", "&"), headers=headers)
        assert svg.status_code == 200
        assert svg.headers["content-type"] == "image/svg+xml"
        assert svg.text.startswith("<svg") and "<script" not in svg.text
        assert "script-src" not in svg.headers["content-security-policy"]
    assert client.get("/dashboard/charts/nope.svg", headers=headers).status_code == 404


def test_member_page_shows_own_figures_only(client: TestClient, recorded: Recorded) -> None:
    html = client.get("/dashboard", headers=auth(recorded, "ann@example.com")).text
    assert "ann@example.com" in html
    assert "bob@example.com" not in html and "dia@example.com" not in html
