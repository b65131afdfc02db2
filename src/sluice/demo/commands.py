"""`sluice demo`: start the embedded default and feed it a team's week of mail."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from collections import Counter
from typing import Any

import aiosmtplib
from sqlalchemy import Engine

from sluice.api.people import ensure_user
from sluice.demo.rules import write_demo_rules
from sluice.demo.scenario import TEAM, address, team_mail
from sluice.gateway.commands import add_settings_arguments, settings_from_args, stop_event
from sluice.gateway.server import Gateway
from sluice.serve import add_web_argument, serve


async def feed(gateway: Gateway, *, quiet: bool = False) -> Counter[str]:
    """Send the scenario through the gateway's first listener, as a mail client would."""
    spec = gateway.specs[0]
    port = gateway.bound_ports[0]
    outcome: Counter[str] = Counter()
    messages = team_mail()
    async with aiosmtplib.SMTP(hostname=spec.host, port=port,
                               local_hostname="demo-client.example.com") as client:
        for message in messages:
            errors, _ = await client.sendmail(message.mail_from, list(message.rcpt_tos),
                                              message.raw)
            outcome[message.kind] += 1
            outcome["recipients refused"] += len(errors)
    if not quiet:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(outcome.items()) if n)
        print(f"sluice demo: sent {len(messages)} messages ({kinds})", file=sys.stderr)
    return outcome


#: Who can sign in to the demo's web app: the head of sales administers, two colleagues read.
DEMO_ACCOUNTS = (("anna.berg", "admin"), ("ben.okafor", "member"), ("carla.diaz", "member"))


def demo_accounts(engine: Engine) -> list[tuple[str, str, str]]:
    """(address, role, password) of the demo's accounts; new passwords on every run."""
    accounts = []
    for login, role in DEMO_ACCOUNTS:
        password = secrets.token_urlsafe(9)
        ensure_user(engine, address(login), role=role, name=TEAM[login], password=password)
        accounts.append((address(login), role, password))
    return accounts


def cmd_demo(args: argparse.Namespace) -> int:
    settings = settings_from_args(args, web_listen=args.web_listen)
    if settings.rules_file is None:
        settings = settings.model_copy(
            update={"rules_file": write_demo_rules(settings.data_dir)})

    async def main() -> None:
        stop = stop_event()

        async def on_ready(gateway: Gateway) -> None:
            await feed(gateway)
            for email, role, password in await asyncio.to_thread(demo_accounts,
                                                                 gateway.engine):
                print(f"sluice demo: sign in as {email} ({role}) with password {password}",
                      file=sys.stderr, flush=True)
            print(f"sluice demo: rules in {settings.rules_file}; "
                  f"inboxes are maildirs under {settings.data_dir / 'mailboxes'}; "
                  f"open http://{settings.web_listen}/ (Ctrl-C to stop)",
                  file=sys.stderr, flush=True)
            if args.once:
                stop.set()

        await serve(settings, stop, on_ready)

    asyncio.run(main())
    return 0


def register(commands: Any) -> None:
    parser = commands.add_parser("demo", help="run the embedded default with a sample team's mail")
    add_settings_arguments(parser)
    add_web_argument(parser)
    parser.add_argument("--once", action="store_true",
                        help="stop after feeding the sample mail (for scripts and tests)")
    parser.set_defaults(func=cmd_demo)
