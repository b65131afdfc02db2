"""`sluice rules check`, `init` and `export`: the rules file on the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlmodel import Session

from sluice.core.db import init_schema, make_engine
from sluice.core.settings import load_settings
from sluice.router.rulesdb import load_stored_rules
from sluice.router.rulesexport import ruleset_yaml
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
    export = commands.add_parser(
        "export", help="print the rules in force (file + database) as a rules file",
        description="The rules file's domains and destinations with the policy and users' "
        "rules as stored in the database (edited in the web app), as YAML on stdout: "
        "`sluice rules export > rules.yaml` to keep them in git.")
    export.add_argument("--rules", type=Path, metavar="FILE",
                        help="the rules file (default: rules_file of the settings)")
    export.add_argument("--config", type=Path)
    export.add_argument("--data-dir", type=Path)
    export.add_argument("--database-url")
    export.set_defaults(func=run_export)
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


def run_export(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, data_dir=args.data_dir,
                             database_url=args.database_url, rules_file=args.rules)
    if settings.rules_file is None:
        print("sluice rules export: no rules file (--rules FILE or rules_file in the "
              "settings): it holds the internal domains and destinations", file=sys.stderr)
        return 2
    engine = make_engine(settings)
    try:
        init_schema(engine)
        with Session(engine) as session:
            rules = load_stored_rules(session, load_rules(settings.rules_file))
    except RulesError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    sys.stdout.write(ruleset_yaml(rules, "Sluice rules in force: the rules file with the "
                                         "policy and users' rules stored in the database."))
    return 0
