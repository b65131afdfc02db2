"""`sluice rules check` and `sluice rules init`: the rules file on the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from sluice.router.rulesfile import RulesError, audit_warnings, is_domain, load_rules
from sluice.router.starter import starter_rules


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
             ) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """Add `sluice rules`; returns its sub-commands so that `rules test` (sluice.simulate_command,
    which needs the classifier) can be added from above."""
    rules = subparsers.add_parser(
        "rules", help="check or create a rules file",
        description="The diversion rules file: organisation policy, users' own rules and "
        "destinations (docs/rules.md).")
    commands = rules.add_subparsers(dest="rules_command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "check", help="validate a rules file",
        description="Print every problem as FILE:LINE: reason (exit 1), or a summary.")
    check.add_argument("file", type=Path, metavar="FILE")
    check.set_defaults(func=run_check)
    init = commands.add_parser(
        "init", help="write the starter rules (policy in audit mode)",
        description="Write the starter rules file; an existing file is never overwritten.")
    init.add_argument("file", type=Path, metavar="FILE")
    init.add_argument("--domain", action="append", dest="domains", metavar="DOMAIN",
                      help="an internal domain, repeatable (default example.com)")
    init.set_defaults(func=run_init)
    return commands


def run_check(args: argparse.Namespace) -> int:
    try:
        rules = load_rules(args.file)
    except RulesError as exc:
        for problem in exc.problems:
            print(problem)
        return 1
    print(f"{args.file}: OK ({len(rules.policy)} policy rules, {len(rules.users)} users, "
          f"{len(rules.destinations)} destinations)")
    for warning in audit_warnings(rules, str(args.file)):
        print(f"warning: {warning}")
    return 0


def run_init(args: argparse.Namespace) -> int:
    domains = [d.lower() for d in args.domains or ["example.com"]]
    bad = [d for d in domains if not is_domain(d)]
    if bad:
        print(f"sluice rules init: not a domain: {', '.join(bad)}")
        return 2
    try:
        with args.file.open("x", encoding="utf-8") as out:
            out.write(starter_rules(domains))
    except FileExistsError:
        print(f"{args.file}: exists; not overwritten")
        return 1
    print(f"{args.file}: written; the policy is in audit mode (docs/rules.md)")
    return 0
