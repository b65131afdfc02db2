"""/metrics: Prometheus text that parses, figures that match the database, access control."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from sluice.api.app import create_app
from sluice.core.db import init_schema, make_engine
from sluice.core.tables_router import OutboxJob
from sluice.gateway.metrics import METRICS, GatewayMetrics
from sluice.gateway.store import MessageFacts, OutcomeRow
from tests.browser import WebServer
from tests.servers import GatewayThread, gateway_settings

TEAM = ["ann@example.com", "bob@example.com", "cem@example.com"]
FYI = (b"From: boss@example.com\r\nTo: team@example.com\r\nSubject: [FYI] %d\r\n"
       b"Message-ID: <metrics-%d@example.com>\r\n\r\nhello\r\n")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by (name, sorted labels); parsing fails on malformed exposition text."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture(scope="module")
def pending_outbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A data folder whose outbox holds pending jobs: the worker is off."""
    folder = tmp_path_factory.mktemp("metrics")
    rules = folder / "rules.yaml"
    rules.write_text(
        "internal_domains: [example.com]\n"
        "destinations:\n  news: {kind: space}\n  other: {kind: space}\n"
        "users:\n"
        '  ann@example.com:\n    - {match: {subject: "^\\\\[FYI\\\\]"}, action: divert, to: news}\n'
        '  bob@example.com:\n    - {match: {subject: "^\\\\[FYI\\\\]"}, action: divert, '
        "to: other}\n")
    gateway = GatewayThread(gateway_settings(folder, rules_file=rules, classify=False,
                                             worker=False), hook=None)
    try:
        with smtplib.SMTP("127.0.0.1", gateway.port) as client:
            for number in range(3):
                client.sendmail("boss@example.com", TEAM, FYI % (number, number))
    finally:
        gateway.stop()
    return folder


def test_outbox_figures_match_the_database(pending_outbox: Path) -> None:
    settings = gateway_settings(pending_outbox)
    server = WebServer(settings)
    try:
        with server.engine.connect() as conn:
            count, oldest = conn.execute(select(func.count(), func.min(OutboxJob.created_at))
                                         .where(OutboxJob.state == "pending")).one()
        before = datetime.now(UTC)
        response = httpx.get(f"{server.base_url}/metrics")
        after = datetime.now(UTC)
    finally:
        server.stop()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    values = samples(response.text)
    assert count == 6  # three messages, two destinations each
    assert values[("sluice_outbox_pending_jobs", ())] == count
    assert values[("sluice_outbox_retrying_jobs", ())] == 0
    oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
    age = values[("sluice_outbox_oldest_pending_age_seconds", ())]
    assert (before - oldest).total_seconds() <= age <= (after - oldest).total_seconds()


def test_gateway_counters_are_served(tmp_path: Path) -> None:
    engine = make_engine(gateway_settings(tmp_path))
    init_schema(engine)
    metrics = GatewayMetrics()
    metrics.observe_message(MessageFacts(
        message={"fingerprint": "f1", "source": "lmtp"},
        outcomes=(OutcomeRow("a@x.test", "deliver", "delivered", "250 ok"),
                  OutcomeRow("b@x.test", "divert", "diverted", "250 posted", "r1", "news"),
                  OutcomeRow("c@x.test", "divert", "delivered", "250 ok", "r2", "news",
                             "audit"))))
    metrics.observe_message(MessageFacts(
        message={"fingerprint": "f2", "source": "smtp"},
        outcomes=(OutcomeRow("a@x.test", "deliver", "deferred", "451 later", "fail-open"),)))
    metrics.observe_replies(["250 2.0.0 OK", "250 2.0.0 OK", "451 4.3.0 later", "550 no"])
    metrics.observe_storage_error()
    with metrics.relay_timer():
        pass
    app = create_app(engine, gateway_settings(tmp_path, metrics_token="t0ken"))
    app.state.metric_registries = (metrics.registry,)
    text = TestClient(app).get("/metrics", headers={"Authorization": "Bearer t0ken"}).text
    values = samples(text)
    assert values[("sluice_messages_received_total", (("protocol", "lmtp"),))] == 1
    assert values[("sluice_messages_received_total", (("protocol", "smtp"),))] == 1
    assert values[("sluice_decisions_total", (("action", "divert"), ("mode", "audit")))] == 1
    assert values[("sluice_decisions_total", (("action", "deliver"), ("mode", "enforce")))] == 2
    assert values[("sluice_recipients_total", (("status", "delivered"),))] == 2
    assert values[("sluice_recipients_total", (("status", "deferred"),))] == 1
    assert values[("sluice_fail_open_messages_total", ())] == 1
    assert values[("sluice_replies_total", (("code_class", "2xx"),))] == 2
    assert values[("sluice_replies_total", (("code_class", "5xx"),))] == 1
    assert values[("sluice_storage_errors_total", ())] == 1
    assert values[("sluice_relay_seconds_count", ())] == 1
    assert values[("sluice_outbox_pending_jobs", ())] == 0
    engine.dispose()


def test_access_needs_loopback_or_the_token(tmp_path: Path) -> None:
    engine = make_engine(gateway_settings(tmp_path))
    init_schema(engine)
    # TestClient's peer is not an address: only the token lets it in.
    open_app = TestClient(create_app(engine, gateway_settings(tmp_path)))
    assert open_app.get("/metrics").status_code == 403
    with_token = TestClient(create_app(engine, gateway_settings(tmp_path, metrics_token="s3")))
    assert with_token.get("/metrics", headers={"Authorization": "Bearer s3"}).status_code == 200
    assert with_token.get("/metrics", headers={"Authorization": "Bearer s4"}).status_code == 403
    engine.dispose()


def test_loopback_scrapes_but_a_proxied_request_does_not(tmp_path: Path) -> None:
    server = WebServer(gateway_settings(tmp_path))
    try:
        assert httpx.get(f"{server.base_url}/metrics").status_code == 200
        relayed = httpx.get(f"{server.base_url}/metrics",
                            headers={"X-Forwarded-For": "203.0.113.9"})
        assert relayed.status_code == 403
    finally:
        server.stop()
    elsewhere = WebServer(gateway_settings(tmp_path / "b", metrics_networks=["10.0.0.0/8"]))
    try:
        assert httpx.get(f"{elsewhere.base_url}/metrics").status_code == 403
    finally:
        elsewhere.stop()


def test_the_gateway_counts_what_it_records(tmp_path: Path) -> None:
    sample = ("sluice_messages_received_total", {"protocol": "smtp"})
    before = METRICS.registry.get_sample_value(*sample) or 0.0
    gateway = GatewayThread(gateway_settings(tmp_path))
    try:
        with smtplib.SMTP("127.0.0.1", gateway.port) as client:
            client.sendmail("a@example.com", ["b@example.com"], b"Subject: x\r\n\r\nhi\r\n")
    finally:
        gateway.stop()
    assert METRICS.registry.get_sample_value(*sample) == before + 1
