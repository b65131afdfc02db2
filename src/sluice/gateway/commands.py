"""Options shared by the commands that run the gateway, their stop signals, `sluice passwd`.

`sluice serve`, `sluice gateway` and `sluice worker` themselves are in sluice/serve.py: a
node runs any mix of roles, and the health listener sits above the gateway package."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from sluice.core.settings import Settings, load_settings

log = logging.getLogger(__name__)


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that runs the gateway; all default to None so the
    config file and SLUICE_* variables are not masked."""
    parser.add_argument("--config", type=Path, help="TOML config file (or SLUICE_CONFIG)")
    parser.add_argument("--listen", action="append", metavar="[lmtp://]HOST:PORT",
                        help="listen address, repeatable (default 127.0.0.1:10025)")
    parser.add_argument("--upstream", metavar="HOST:PORT",
                        help="relay to this SMTP server (default: local maildirs in data dir)")
    parser.add_argument("--data-dir", type=Path, help="state folder (default ./data)")
    parser.add_argument("--database-url", help="SQLAlchemy URL (default SQLite in the data dir)")
    parser.add_argument("--hostname", help="name in the greeting and Received headers")
    parser.add_argument("--allowed-network", action="append", dest="allowed_networks",
                        metavar="CIDR", help="client networks that may relay, repeatable")
    parser.add_argument("--tls-cert", type=Path, help="certificate for STARTTLS (PEM)")
    parser.add_argument("--tls-key", type=Path, help="private key for STARTTLS (PEM)")
    parser.add_argument("--require-starttls", action="store_true", default=None)
    parser.add_argument("--auth-users-file", type=Path,
                        help="users allowed to AUTH (lines from `sluice passwd`)")
    parser.add_argument("--upstream-starttls", action="store_true", default=None)
    parser.add_argument("--upstream-user")
    parser.add_argument("--max-message-size", type=int, metavar="BYTES")
    parser.add_argument("--max-recipients", type=int)
    parser.add_argument("--max-sessions", type=int)
    parser.add_argument("--max-sessions-per-client", type=int, metavar="N",
                        help="concurrent sessions one client address may hold (default 50, "
                             "0: no limit)")
    parser.add_argument("--command-timeout", type=float, metavar="SECONDS")
    parser.add_argument("--data-timeout", type=float, metavar="SECONDS")
    parser.add_argument("--classifier-model", type=Path, metavar="FILE",
                        help="model from `sluice train` (default: the shipped model)")
    parser.add_argument("--no-classify", dest="classify", action="store_false", default=None,
                        help="relay without classifying")
    parser.add_argument("--rules", dest="rules_file", type=Path, metavar="FILE",
                        help="organisation policy and user rules (YAML, docs/rules.md)")
    parser.add_argument("--outbox-deadline", type=float, metavar="SECONDS",
                        help="deliver diverted mail as mail when its destination stays down "
                             "this long (default 1800)")
    parser.add_argument("--no-worker", dest="worker", action="store_false", default=None,
                        help="do not run the outbox worker in this process")
    parser.add_argument("--base-url", help="how people reach the web app (links in posts)")
    parser.add_argument("--shutdown-grace", type=float, metavar="SECONDS",
                        help="on SIGTERM/SIGINT, transactions under way get this long to "
                             "finish before the rest is answered 421 (default 30)")
    parser.add_argument("--health-listen", metavar="HOST:PORT",
                        help="serve /healthz and /metrics on this address (for nodes "
                             "without the web role; default: none)")


SETTINGS_OPTIONS = (
    "listen", "upstream", "data_dir", "database_url", "hostname", "allowed_networks",
    "tls_cert", "tls_key", "require_starttls", "auth_users_file", "upstream_starttls",
    "upstream_user", "max_message_size", "max_recipients", "max_sessions",
    "max_sessions_per_client", "command_timeout", "data_timeout", "classifier_model",
    "classify", "rules_file", "outbox_deadline", "worker", "base_url", "shutdown_grace",
    "health_listen",
)


def settings_from_args(args: argparse.Namespace, **extra: Any) -> Settings:
    overrides = {name: getattr(args, name, None) for name in SETTINGS_OPTIONS}
    overrides.update(extra)
    return load_settings(args.config, **overrides)


def stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def shutdown_events() -> tuple[asyncio.Event, asyncio.Event]:
    """(stop, force): the first SIGTERM/SIGINT asks for a graceful stop, a second one for
    an immediate one."""
    stop, force = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def signalled() -> None:
        if stop.is_set():
            print("sluice: stopping at once", file=sys.stderr, flush=True)
            force.set()
            return
        print("sluice: stopping (a second signal stops at once)", file=sys.stderr, flush=True)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, signalled)
    return stop, force


def cmd_passwd(args: argparse.Namespace) -> int:
    from sluice.gateway.auth import hash_password

    password = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else \
        getpass.getpass(f"password for {args.user}: ")
    print(f"{args.user}:{hash_password(password)}")
    return 0


def register(commands: Any) -> None:
    passwd = commands.add_parser("passwd", help="print a users-file line for SMTP AUTH")
    passwd.add_argument("user")
    passwd.set_defaults(func=cmd_passwd)
