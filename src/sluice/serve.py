"""`sluice serve`: one node — any mix of the gateway, the outbox worker and the web app.

The embedded default runs all three on one event loop. Split deployments run several nodes
on one PostgreSQL (docs/deploy.md): `--role gateway` nodes behind the MTA, `--role worker`
nodes publishing the outbox, `--role web` nodes behind the web proxy. `sluice gateway`
(gateway + worker) and `sluice worker` are the same code with fixed roles.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any

from sluice.core.errors import ConfigError
from sluice.core.settings import Settings
from sluice.gateway.commands import add_settings_arguments, settings_from_args, shutdown_events

if TYPE_CHECKING:
    from sluice.gateway.server import Gateway

log = logging.getLogger(__name__)

ROLES = ("gateway", "worker", "web")
ALL_ROLES = frozenset(ROLES)
#: A listener that has not bound within this long is reported as a start-up failure.
STARTUP_TIMEOUT = 30.0


def parse_roles(text: str) -> frozenset[str]:
    """"gateway,worker" → the set; "all" → every role."""
    names = {part.strip().lower() for part in text.split(",") if part.strip()}
    if "all" in names:
        names = (names - {"all"}) | ALL_ROLES
    unknown = names - ALL_ROLES
    if unknown or not names:
        raise ConfigError(f"--role takes {', '.join(ROLES)} or all (comma-separated), "
                          f"got {text!r}")
    return frozenset(names)


def node_settings(settings: Settings, roles: Iterable[str]) -> Settings:
    """What the gateway object must run for these roles: listeners only with the gateway
    role, the worker (and the daily digests, which it sends) only with the worker role."""
    roles = frozenset(roles)
    update: dict[str, Any] = {"worker": "worker" in roles}
    if "gateway" not in roles:
        update["listen"] = []
    return settings.model_copy(update=update)


def _embedded_server(config: Any) -> Any:
    """uvicorn inside our loop: signals are ours, not uvicorn's. (The web stack is imported
    here, not at start-up: every `sluice` command imports this module to register `serve`.)"""
    import uvicorn

    class _EmbeddedServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            yield

    return _EmbeddedServer(config)


class _Http:
    """One embedded uvicorn server: started, then stopped gracefully or at once."""

    def __init__(self, name: str, app: Any, listen: str, grace: float) -> None:
        import uvicorn

        from sluice.gateway.server import parse_hostport

        self.name = name
        self.host, self.port = parse_hostport(listen)
        self.server = _embedded_server(uvicorn.Config(
            app, host=self.host, port=self.port, log_level="warning", lifespan="off",
            access_log=False, timeout_graceful_shutdown=max(1, round(grace))))
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT
        while not self.server.started and not self.task.done() and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        if not self.server.started:
            await self.stop(force=True)
            raise ConfigError(f"{self.name}: cannot listen on {self.host}:{self.port}")

    async def stop(self, force: bool = False) -> None:
        self.server.should_exit = True
        self.server.force_exit = force
        if self.task is not None:
            with contextlib.suppress(BaseException):
                await self.task


async def serve(settings: Settings, stop: asyncio.Event,
                on_ready: Callable[[Gateway], Awaitable[None]] | None = None, *,
                roles: Iterable[str] = ALL_ROLES, force: asyncio.Event | None = None) -> bool:
    """Run this node's roles until `stop`, then shut down gracefully (`force`: at once).
    True when everything in flight finished; `on_ready` gets the gateway, when one runs."""
    from sluice.core.db import init_schema, make_engine
    from sluice.gateway.metrics import METRICS
    from sluice.gateway.server import Gateway
    from sluice.health import NodeHealth, health_app, with_health

    roles = frozenset(roles)
    settings = node_settings(settings, roles)
    force = force or asyncio.Event()
    gateway: Gateway | None = None
    if roles & {"gateway", "worker"}:
        gateway = Gateway(settings)
        await gateway.start()
        engine = gateway.engine
    else:
        engine = make_engine(settings)
        init_schema(engine)
    health = NodeHealth(roles, engine, settings, gateway)
    servers: list[_Http] = []
    finished = False
    try:
        if "web" in roles:
            from sluice.api.app import create_app

            app = create_app(engine, settings)
            app.state.metric_registries = (METRICS.registry,)  # this process's counters
            servers.append(_Http("web app", with_health(health, app), settings.web_listen,
                                 settings.shutdown_grace))
        if settings.health_listen:
            servers.append(_Http("health listener", health_app(health, (METRICS.registry,)),
                                 settings.health_listen, settings.shutdown_grace))
        for server in servers:
            await server.start()
        _announce(settings, roles, gateway, servers)
        if on_ready is not None and gateway is not None:
            await on_ready(gateway)
        await stop.wait()
    finally:
        health.draining = True
        finished = True
        if gateway is not None:
            # The web app and the health listener keep answering (503 draining) meanwhile.
            finished = await gateway.stop(force=force)
        else:
            engine.dispose()
        for server in servers:
            await server.stop(force=force.is_set())
    return finished and not force.is_set()


def _announce(settings: Settings, roles: frozenset[str], gateway: Gateway | None,
              servers: list[_Http]) -> None:
    lines = []
    if gateway is not None:
        target = settings.upstream or f"maildirs in {settings.data_dir / 'mailboxes'}"
        for spec, bound in zip(gateway.specs, gateway.bound_ports, strict=True):
            lines.append(f"{'LMTP' if spec.lmtp else 'SMTP'} gateway on {spec.host}:{bound} → "
                         f"{target}")
        if "worker" in roles:
            lines.append("outbox worker publishing to "
                         f"{', '.join(gateway.destinations) or 'no destination yet'}")
    lines += [f"{server.name} on http://{server.host}:{server.port}/" for server in servers]
    for line in lines:
        print(f"sluice: {line}", file=sys.stderr, flush=True)


def add_web_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--web-listen", metavar="HOST:PORT",
                        help="web app address (default 127.0.0.1:8025)")


def run_node(settings: Settings, roles: frozenset[str]) -> int:
    """Exit status: 0 after a graceful stop (transactions still open when the grace ran out
    were answered 421 — that is the limit working), 1 after a second signal."""

    async def main() -> bool:
        stop, force = shutdown_events()
        await serve(settings, stop, roles=roles, force=force)
        return not force.is_set()

    return 0 if asyncio.run(main()) else 1


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_from_args(args, web_listen=args.web_listen)
    if args.role:
        roles = parse_roles(args.role)
    else:  # the embedded default; --no-worker (or worker = false) leaves the worker out
        roles = ALL_ROLES if settings.worker else ALL_ROLES - {"worker"}
    return run_node(settings, roles)


def cmd_gateway(args: argparse.Namespace) -> int:
    """The relay, with the outbox worker unless --no-worker; no web app."""
    settings = settings_from_args(args)
    return run_node(settings, frozenset({"gateway", "worker"} if settings.worker
                                        else {"gateway"}))


def cmd_worker(args: argparse.Namespace) -> int:
    """The outbox worker alone (split deployments: gateways run with --no-worker)."""
    return run_node(settings_from_args(args), frozenset({"worker"}))


def register(commands: Any) -> None:
    parser = commands.add_parser("serve", help="run a node: gateway, worker and web app "
                                               "(all by default)")
    add_settings_arguments(parser)
    add_web_argument(parser)
    parser.add_argument("--role", metavar="ROLE[,ROLE…]",
                        help="what this node runs: gateway, worker, web, or all (default)")
    parser.set_defaults(func=cmd_serve)

    gateway = commands.add_parser("gateway", help="run the SMTP/LMTP relay (and the outbox "
                                                  "worker unless --no-worker)")
    add_settings_arguments(gateway)
    gateway.set_defaults(func=cmd_gateway)

    worker = commands.add_parser("worker", help="run only the outbox worker")
    add_settings_arguments(worker)
    worker.set_defaults(func=cmd_worker)
