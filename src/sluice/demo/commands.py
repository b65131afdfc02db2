"""`sluice demo`: start the embedded default and feed it a team's week of mail."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from typing import Any

import aiosmtplib

from sluice.demo.rules import write_demo_rules
from sluice.demo.scenario import team_mail
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


def cmd_demo(args: argparse.Namespace) -> int:
    settings = settings_from_args(args, web_listen=args.web_listen)
    if settings.rules_file is None:
        settings = settings.model_copy(
            update={"rules_file": write_demo_rules(settings.data_dir)})

    async def main() -> None:
        stop = stop_event()

        async def on_ready(gateway: Gateway) -> None:
            await feed(gateway)
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
