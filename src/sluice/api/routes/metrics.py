"""`GET /metrics`: Prometheus text format.

Two sources: the gateway's in-process counters and relay histogram (registries handed to
the app as `app.state.metric_registries` by whoever runs the gateway in the same process,
e.g. `sluice serve`), and figures read from the database at scrape time (outbox depth and
the age of its oldest pending job), which are right in every process that shares the
database.

Access: metrics name no person, but they tell an outsider how much mail flows and whether
a destination is down, so they are not public. A scrape is allowed from the networks in
`metrics_networks` (default: loopback), or anywhere with `Authorization: Bearer
<metrics_token>` when a token is set. A request relayed by a proxy (it carries
X-Forwarded-For or Forwarded) is judged by the address the proxy reports when the proxy is
in `trusted_proxies`, and otherwise only by the token: a reverse proxy on the same host must
not turn every outside request into a loopback one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, case, func, select

from sluice.api.auth import config as web_config
from sluice.api.security import client_address, from_trusted_proxy, same
from sluice.core.settings import Settings
from sluice.core.tables_router import PENDING, OutboxJob

router = APIRouter()

_job = OutboxJob.__table__  # type: ignore[attr-defined]
LOOPBACK = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True, slots=True)
class OutboxState:
    pending: int
    retrying: int
    oldest_pending_age: float


def outbox_state(engine: Engine, now: datetime | None = None) -> OutboxState:
    """Pending jobs (state index), those that failed at least once, the oldest one's age."""
    statement = select(func.count(), func.coalesce(func.sum(case((_job.c.attempts > 0, 1),
                                                                  else_=0)), 0),
                       func.min(_job.c.created_at)).where(_job.c.state == PENDING)
    with engine.connect() as conn:
        count, retrying, oldest = conn.execute(statement).one()
    age = 0.0
    if oldest is not None:
        if oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        age = max(0.0, ((now or datetime.now(UTC)) - oldest).total_seconds())
    return OutboxState(int(count), int(retrying), age)


class DatabaseCollector(Collector):
    """Figures read from the database on every scrape."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = outbox_state(self.engine)
        yield GaugeMetricFamily("sluice_outbox_pending_jobs",
                                "Posts waiting to be published (outbox jobs pending)",
                                value=state.pending)
        yield GaugeMetricFamily("sluice_outbox_retrying_jobs",
                                "Pending outbox jobs that failed at least once",
                                value=state.retrying)
        yield GaugeMetricFamily("sluice_outbox_oldest_pending_age_seconds",
                                "Age of the oldest pending outbox job (0 when none)",
                                value=state.oldest_pending_age)


class _Forward(Collector):
    """Another registry's metrics, collected into the scrape's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()


def exposition(engine: Engine, registries: Iterable[CollectorRegistry]) -> bytes:
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(DatabaseCollector(engine))
    for registry in registries:
        scrape.register(_Forward(registry))
    return generate_latest(scrape)


def allowed(request: Request, settings: Settings | None) -> bool:
    """Whether this request may scrape (see the module docstring)."""
    token = settings.metrics_token if settings else ""
    header = request.headers.get("authorization", "")
    scheme, _, sent = header.partition(" ")
    if token and scheme.lower() == "bearer" and same(sent.strip(), token):
        return True
    web = web_config(request)
    proxied = "x-forwarded-for" in request.headers or "forwarded" in request.headers
    if proxied and not from_trusted_proxy(web, request):
        return False
    try:
        address = ipaddress.ip_address(client_address(web, request))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    networks = settings.metrics_networks if settings else list(LOOPBACK)
    return any(address in ipaddress.ip_network(net, strict=False) for net in networks)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    settings: Settings | None = getattr(request.app.state, "settings", None)
    if not allowed(request, settings):
        raise HTTPException(403, "metrics are served to the configured networks or with the "
                                 "metrics token")
    registries = getattr(request.app.state, "metric_registries", ())
    return Response(exposition(request.app.state.engine, registries),
                    media_type=CONTENT_TYPE_LATEST)
