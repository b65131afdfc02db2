"""`sluice serve`: the embedded default — gateway and web app in one process on one loop."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any

from sluice.core.settings import Settings
from sluice.gateway.commands import add_settings_arguments, settings_from_args, stop_event

if TYPE_CHECKING:
    from sluice.gateway.server import Gateway

log = logging.getLogger(__name__)


def _embedded_server(config: Any) -> Any:
    """uvicorn inside our loop: signals are ours, not uvicorn's. (The web stack is imported
    here, not at start-up: every `sluice` command imports this module to register `serve`.)"""
    import uvicorn

    class _EmbeddedServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            yield

    return _EmbeddedServer(config)


async def serve(settings: Settings, stop: asyncio.Event,
                on_ready: Callable[[Gateway], Awaitable[None]] | None = None) -> None:
    import uvicorn

    from sluice.api.app import create_app
    from sluice.gateway.metrics import METRICS
    from sluice.gateway.server import Gateway, parse_hostport

    gateway = Gateway(settings)
    await gateway.start()
    host, port = parse_hostport(settings.web_listen)
    app = create_app(gateway.engine, settings)
    app.state.metric_registries = (METRICS.registry,)  # this process's gateway counters
    web = _embedded_server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                          lifespan="off"))
    web_task = asyncio.create_task(web.serve())
    for spec, bound in zip(gateway.specs, gateway.bound_ports, strict=True):
        print(f"sluice: {'LMTP' if spec.lmtp else 'SMTP'} gateway on {spec.host}:{bound} → "
              f"{settings.upstream or 'maildirs in ' + str(settings.data_dir / 'mailboxes')}",
              file=sys.stderr, flush=True)
    print(f"sluice: web app on http://{host}:{port}/", file=sys.stderr, flush=True)
    try:
        if on_ready is not None:
            await on_ready(gateway)
        await stop.wait()
    finally:
        web.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(web_task, timeout=10)
        await gateway.stop()


def add_web_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--web-listen", metavar="HOST:PORT",
                        help="web app address (default 127.0.0.1:8025)")


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_from_args(args, web_listen=args.web_listen)

    async def main() -> None:
        await serve(settings, stop_event())

    asyncio.run(main())
    return 0


def register(commands: Any) -> None:
    parser = commands.add_parser("serve", help="run gateway and web app (embedded default)")
    add_settings_arguments(parser)
    add_web_argument(parser)
    parser.set_defaults(func=cmd_serve)
