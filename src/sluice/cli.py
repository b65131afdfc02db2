"""The `sluice` command line: one sub-command per job, each registered by the package owning it."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from sluice import __version__
from sluice.core.errors import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sluice", description=__doc__)
    parser.add_argument("--version", action="version", version=f"sluice {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Imported here so that `sluice --help` stays fast and import errors name the command.
    from sluice import analyze_command, db_command, serve, simulate_command
    from sluice.api import commands as api_commands
    from sluice.classifier import commands as classifier_commands
    from sluice.demo import commands as demo_commands
    from sluice.gateway import commands as gateway_commands
    from sluice.gateway import watch as gateway_watch
    from sluice.reports import commands as reports_commands
    from sluice.reports import report_command
    from sluice.router import commands as router_commands

    for package in (gateway_commands, gateway_watch, serve, classifier_commands):
        package.register(commands)
    simulate_command.register_rules_test(router_commands.register(commands))
    for package in (reports_commands, report_command, analyze_command, demo_commands):
        package.register(commands)
    api_commands.register(commands)
    db_command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * args.verbose
    logging.basicConfig(
        level=max(level, logging.DEBUG), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        print(f"sluice: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
