"""The health checks' judgements (pure), the role parser, and who may scrape /metrics on
the health listener. The processes themselves are tested in tests/test_serve.py."""

from __future__ import annotations

import pytest

from sluice.api.routes.metrics import OutboxState
from sluice.core.errors import ConfigError
from sluice.core.settings import load_settings
from sluice.health import Check, Report, database_check, gateway_check, scrape_allowed, worker_check
from sluice.serve import ALL_ROLES, node_settings, parse_roles


def test_gateway_check_names_what_is_wrong() -> None:
    listening = [("smtp://127.0.0.1:10025", True), ("lmtp://127.0.0.1:10024", True)]
    assert gateway_check(listening, draining=False, sessions=3, max_sessions=100).ok
    draining = gateway_check(listening, draining=True, sessions=3, max_sessions=100)
    assert (draining.ok, draining.reason) == (False, "draining")
    closed = gateway_check([*listening[:1], ("lmtp://127.0.0.1:10024", False)],
                           draining=False, sessions=0, max_sessions=100)
    assert not closed.ok and closed.reason == "not accepting on lmtp://127.0.0.1:10024"
    assert gateway_check([], draining=False, sessions=0, max_sessions=100).reason == "no listener"


def test_worker_check_fails_when_stalled_or_not_running_but_not_for_a_backlog() -> None:
    backlog = OutboxState(pending=5000, retrying=4000, oldest_pending_age=3600.0)
    fine = worker_check(running=True, draining=False, last_round_age=1.0, max_age=300,
                        outbox=backlog)
    assert fine.ok and fine.facts["outbox_pending"] == 5000
    stalled = worker_check(running=True, draining=False, last_round_age=301.0, max_age=300,
                           outbox=None)
    assert not stalled.ok and "301 s ago" in stalled.reason
    dead = worker_check(running=False, draining=False, last_round_age=1.0, max_age=300,
                        outbox=None)
    assert dead.reason == "not running"
    fresh = worker_check(running=True, draining=False, last_round_age=None, max_age=300,
                         outbox=None)
    assert fresh.reason == "no round completed yet"


def test_report_is_503_naming_each_failing_check() -> None:
    report = Report(("gateway", "worker"), (
        gateway_check([("smtp://127.0.0.1:1", True)], draining=False, sessions=0,
                      max_sessions=1),
        database_check(None, "OperationalError: connection refused"),
        Check("worker", False, "not running")), draining=False)
    assert report.status_code == 503
    body = report.body()
    assert body["status"] == "failing"
    assert body["failing"] == {"database": "OperationalError: connection refused",
                               "worker": "not running"}
    healthy = Report(("web",), (database_check(0.001, ""),), draining=False)
    assert healthy.status_code == 200 and healthy.body()["failing"] == {}


def test_roles() -> None:
    assert parse_roles("all") == ALL_ROLES
    assert parse_roles("gateway, worker") == {"gateway", "worker"}
    for bad in ("", "gateway,mailer", "web;worker"):
        with pytest.raises(ConfigError):
            parse_roles(bad)
    settings = load_settings(None, listen=["127.0.0.1:1"], worker=True)
    assert node_settings(settings, {"gateway"}).worker is False
    worker = node_settings(settings, {"worker"})
    assert worker.listen == [] and worker.worker is True


def test_scrape_allowed_by_network_or_token() -> None:
    settings = load_settings(None, metrics_networks=["10.0.0.0/8"], metrics_token="t0ken")
    assert scrape_allowed("10.1.2.3", "", settings)
    assert scrape_allowed("::ffff:10.1.2.3", "", settings)
    assert not scrape_allowed("192.0.2.1", "", settings)
    assert not scrape_allowed("192.0.2.1", "Bearer wrong", settings)
    assert scrape_allowed("192.0.2.1", "Bearer t0ken", settings)
    assert not scrape_allowed("192.0.2.1", "Bearer t0ken", load_settings(None))  # no token set
