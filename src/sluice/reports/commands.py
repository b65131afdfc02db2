"""`sluice trace`: where did a message, or a recipient's mail, go."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sluice.core.db import init_schema, make_engine
from sluice.core.errors import ConfigError
from sluice.core.settings import load_settings
from sluice.reports.trace import format_trace, trace


def parse_since(text: str) -> datetime:
    """ISO date/time, or a span back from now: 30m, 12h, 7d."""
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if text[-1:] in units and text[:-1].isdigit():
        return datetime.now(UTC) - timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"--since: expected an ISO date or 30m/12h/7d, got {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def cmd_trace(args: argparse.Namespace) -> int:
    if not args.message_id and not args.recipient:
        raise ConfigError("trace needs a MESSAGE-ID or --recipient ADDR")
    settings = load_settings(args.config, data_dir=args.data_dir,
                             database_url=args.database_url)
    engine = make_engine(settings)
    init_schema(engine)
    traces = trace(engine, message_id=args.message_id, recipient=args.recipient,
                   since=parse_since(args.since) if args.since else None, limit=args.limit)
    if args.json:
        print(json.dumps([asdict(t) for t in traces], default=str, indent=2))
    else:
        print(format_trace(traces) if traces else "no such message recorded")
    return 0 if traces else 1


def register(commands: Any) -> None:
    parser = commands.add_parser("trace", help="where did my mail go?")
    parser.add_argument("message_id", nargs="?", metavar="MESSAGE-ID",
                        help="with or without angle brackets")
    parser.add_argument("--recipient", metavar="ADDR")
    parser.add_argument("--since", metavar="WHEN", help="ISO date, or 30m / 12h / 7d back")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--database-url")
    parser.set_defaults(func=cmd_trace)
