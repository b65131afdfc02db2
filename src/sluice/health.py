"""Health of one node, per role: what a load balancer asks before sending it work.

`GET /healthz` answers 200 when every check of this node's roles passes and 503 otherwise,
with a JSON body naming each failing check and why. Checks:
- gateway: every listener bound and accepting, not draining (a stopping node says
  "draining" at once, so a balancer stops sending before the listeners are gone);
- database: a cheap query answered within DATABASE_TIMEOUT;
- worker: the outbox worker is running and its last completed round is younger than
  `health_worker_max_age`; the outbox depth is reported beside it (a backlog is a figure,
  not a failure: it drains as soon as the destination is back).

A node with the web role answers /healthz on the web app's port; any node may also run a
small listener of its own (`health_listen`) with /healthz and /metrics. That listener is a
plain ASGI callable under uvicorn: uvicorn is already how the web app is served (one HTTP
parser for both, with its limits and keep-alive handling), and a bare callable keeps
FastAPI's routing, docs and middleware out of a path that must answer while the node is
busy or draining. A hand-written HTTP parser on asyncio's own server would be less code to
load but more to get right.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, text

from sluice.core.settings import Settings

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from sluice.api.routes.metrics import OutboxState
    from sluice.gateway.server import Gateway

#: Longest wait for the database's answer before the check fails.
DATABASE_TIMEOUT = 2.0

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Check:
    """One named check: passed or not, why not, and figures worth showing either way."""

    name: str
    ok: bool
    reason: str = ""
    facts: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Report:
    roles: tuple[str, ...]
    checks: tuple[Check, ...]
    draining: bool

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def status_code(self) -> int:
        return 200 if self.ok else 503

    def body(self) -> dict[str, object]:
        status = "ok" if self.ok else ("draining" if self.draining else "failing")
        return {
            "status": status,
            "roles": list(self.roles),
            "failing": {c.name: c.reason for c in self.checks if not c.ok},
            "checks": {c.name: {"ok": c.ok, **({"reason": c.reason} if c.reason else {}),
                                **c.facts} for c in self.checks},
        }


def gateway_check(listeners: Iterable[tuple[str, bool]], *, draining: bool,
                  sessions: int, max_sessions: int) -> Check:
    """`listeners`: (address, accepting) per listen address."""
    listeners = list(listeners)
    facts = {"listeners": {address: accepting for address, accepting in listeners},
             "sessions": sessions, "max_sessions": max_sessions}
    if draining:
        return Check("gateway", False, "draining", facts)
    closed = [address for address, accepting in listeners if not accepting]
    if not listeners:
        return Check("gateway", False, "no listener", facts)
    if closed:
        return Check("gateway", False, f"not accepting on {', '.join(closed)}", facts)
    return Check("gateway", True, "", facts)


def database_check(latency: float | None, error: str) -> Check:
    if latency is None:
        return Check("database", False, error or "no answer")
    return Check("database", True, "", {"latency_ms": round(latency * 1000, 1)})


def worker_check(*, running: bool, draining: bool, last_round_age: float | None,
                 max_age: float, outbox: OutboxState | None) -> Check:
    facts: dict[str, object] = {"last_round_age_seconds":
                                None if last_round_age is None else round(last_round_age, 1)}
    if outbox is not None:
        facts.update(outbox_pending=outbox.pending, outbox_retrying=outbox.retrying,
                     outbox_oldest_pending_age_seconds=round(outbox.oldest_pending_age, 1))
    if draining:
        return Check("worker", False, "draining", facts)
    if not running:
        return Check("worker", False, "not running", facts)
    if last_round_age is None:
        return Check("worker", False, "no round completed yet", facts)
    if last_round_age > max_age:
        return Check("worker", False, f"last round completed {last_round_age:.0f} s ago "
                                      f"(limit {max_age:.0f} s)", facts)
    return Check("worker", True, "", facts)


class NodeHealth:
    """The checks of one node's roles, read from the parts running in this process."""

    def __init__(self, roles: Iterable[str], engine: Engine, settings: Settings,
                 gateway: Gateway | None) -> None:
        self.roles = tuple(sorted(roles))
        self.engine = engine
        self.settings = settings
        self.gateway = gateway
        #: Set by the node on the first stop signal (a web-only node has no gateway to ask).
        self.draining = False
        self._probe: asyncio.Future[tuple[float, OutboxState | None]] | None = None
        self._probe_started = 0.0

    def _query(self, with_outbox: bool) -> tuple[float, OutboxState | None]:
        from sluice.api.routes.metrics import outbox_state

        started = time.perf_counter()
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1")).scalar()
        latency = time.perf_counter() - started
        return latency, outbox_state(self.engine) if with_outbox else None

    async def _database(self) -> tuple[Check, OutboxState | None]:
        """One probe at a time: a hung database must not pile up a thread per request."""
        loop = asyncio.get_running_loop()
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(
                asyncio.to_thread(self._query, "worker" in self.roles))
            # A probe that outlived its request still has its error read (no warning).
            self._probe.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._probe_started = loop.time()
        try:
            latency, outbox = await asyncio.wait_for(asyncio.shield(self._probe),
                                                     DATABASE_TIMEOUT)
        except TimeoutError:
            waited = loop.time() - self._probe_started
            return database_check(None, f"no answer for {waited:.1f} s"), None
        except Exception as exc:
            return database_check(None, f"{type(exc).__name__}: {str(exc)[:200]}"), None
        return database_check(latency, ""), outbox

    async def report(self) -> Report:
        gateway = self.gateway
        draining = self.draining or (gateway is not None and gateway.draining)
        database, outbox = await self._database()
        checks = [database]
        if "gateway" in self.roles and gateway is not None:
            listeners = [(f"{spec}", server.is_serving())
                         for spec, server in zip(gateway.specs, gateway.servers, strict=False)]
            sessions = sum(1 for s in gateway.sessions if s.transport is not None)
            checks.insert(0, gateway_check(listeners, draining=draining, sessions=sessions,
                                           max_sessions=self.settings.max_sessions))
        if "worker" in self.roles and gateway is not None:
            last = gateway.worker.last_round
            checks.append(worker_check(
                running=gateway.worker_running, draining=draining,
                last_round_age=None if last is None else time.monotonic() - last,
                max_age=self.settings.health_worker_max_age, outbox=outbox))
        if "web" in self.roles and draining:
            checks.append(Check("web", False, "draining"))
        return Report(self.roles, tuple(checks), draining)


# -- HTTP -----------------------------------------------------------------------------

HEALTH_PATHS = ("/healthz", "/readyz")


async def _respond(send: Send, status: int, body: bytes, content_type: str) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()),
                            (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})


async def _health(health: NodeHealth, send: Send) -> None:
    report = await health.report()
    await _respond(send, report.status_code, json.dumps(report.body()).encode(),
                   "application/json")


def scrape_allowed(client: str, authorization: str, settings: Settings) -> bool:
    """/metrics on the health listener: the configured networks, or the bearer token. No
    proxy headers are honoured here: this listener is scraped directly."""
    scheme, _, sent = authorization.partition(" ")
    token = settings.metrics_token
    if token and scheme.lower() == "bearer" and hmac.compare_digest(sent.strip().encode(),
                                                                    token.encode()):
        return True
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(net, strict=False)
               for net in settings.metrics_networks)


def health_app(health: NodeHealth, registries: Iterable[CollectorRegistry] = ()) -> ASGIApp:
    """The node's own listener: /healthz (and /readyz, the same), /metrics; 404 else."""
    registries = tuple(registries)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path in HEALTH_PATHS:
            await _health(health, send)
        elif path == "/metrics":
            from prometheus_client import CONTENT_TYPE_LATEST

            from sluice.api.routes.metrics import exposition

            headers = dict(scope.get("headers") or [])
            client = (scope.get("client") or ("", 0))[0]
            if not scrape_allowed(client, headers.get(b"authorization", b"").decode("latin-1"),
                                  health.settings):
                await _respond(send, 403, b"forbidden\n", "text/plain")
                return
            body = await asyncio.to_thread(exposition, health.engine, registries)
            await _respond(send, 200, body, CONTENT_TYPE_LATEST)
        else:
            await _respond(send, 404, b"not found\n", "text/plain")

    return app


def with_health(health: NodeHealth, app: ASGIApp) -> ASGIApp:
    """The web app with this node's /healthz in front of it (the app's own /healthz knows
    only the database; the node knows its roles)."""

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in HEALTH_PATHS:
            await _health(health, send)
        else:
            await app(scope, receive, send)

    return dispatch
