"""`sluice user …`: web app accounts and API tokens.

Not to be confused with `sluice passwd`, which prints a line for the gateway's SMTP AUTH
users file; web accounts live in the database and sign in to the web app.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from sluice.api import people
from sluice.core.db import init_schema, make_engine
from sluice.core.errors import ConfigError
from sluice.core.settings import Settings, load_settings
from sluice.router.rulesfile import load_rules
from sluice.space.viewer import ROLES


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config, data_dir=args.data_dir, database_url=args.database_url)


def _engine(args: argparse.Namespace) -> Engine:
    engine = make_engine(_settings(args))
    init_schema(engine)
    return engine


def _read_password(args: argparse.Namespace, email: str) -> str | None:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if args.ask_password:
        first = getpass.getpass(f"web password for {email}: ")
        if getpass.getpass("again: ") != first:
            raise ConfigError("the two passwords differ")
        return first
    return None


def _run(action: Callable[[], str]) -> int:
    """Print what `action` reports; a PeopleError is a message and exit status 1."""
    try:
        print(action())
    except people.PeopleError as exc:
        print(f"sluice user: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    engine = _engine(args)
    password = _read_password(args, args.email)

    def add() -> str:
        user = people.ensure_user(engine, args.email, name=args.name or "",
                                  role="admin" if args.admin else "member", password=password)
        return f"{user.email}: {user.role}" + ("" if user.has_password else
                                               " (no password: tokens or single sign-on)")

    return _run(add)


def cmd_password(args: argparse.Namespace) -> int:
    engine = _engine(args)
    password = _read_password(args, args.email)
    if password is None:
        raise ConfigError("give --password-stdin or --ask")
    return _run(lambda: f"{people.set_password(engine, args.email, password).email}: "
                        "password set, open sessions ended")


def cmd_token(args: argparse.Namespace) -> int:
    engine = _engine(args)
    return _run(lambda: people.issue_token(engine, args.email, args.label))


def cmd_role(args: argparse.Namespace) -> int:
    engine = _engine(args)
    return _run(lambda: f"{people.set_role(engine, args.email, args.role).email}: {args.role}")


def cmd_active(args: argparse.Namespace) -> int:
    engine = _engine(args)
    active = args.user_command == "activate"
    return _run(lambda: f"{people.set_active(engine, args.email, active).email}: "
                        f"{'active' if active else 'deactivated'}")


def cmd_list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    engine = make_engine(settings)
    init_schema(engine)
    accounts = people.list_users(engine)
    rules_file = args.rules_file or settings.rules_file
    domains = load_rules(rules_file).internal_domains if rules_file else frozenset()
    for user in accounts:
        state = "" if user.active else " (deactivated)"
        login = f"last sign-in {user.last_login_at:%Y-%m-%d}" if user.last_login_at else \
            "never signed in"
        print(f"{user.email}\t{user.role}{state}\t{login}")
    known = {u.email for u in accounts}
    seen = [a for a in people.users_seen(engine, domains) if a not in known]
    if seen:
        print(f"\nseen in mail, no account yet ({len(seen)}):")
        for address in seen:
            print(address)
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML config file (or SLUICE_CONFIG)")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--database-url")


def _password_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--password-stdin", action="store_true",
                       help="read the password from the first line of standard input")
    group.add_argument("--ask", dest="ask_password", action="store_true",
                       help="ask for the password on the terminal")


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "user", help="web app accounts and API tokens (not SMTP AUTH: see `sluice passwd`)",
        description=__doc__)
    users = parser.add_subparsers(dest="user_command", required=True, metavar="ACTION")

    add = users.add_parser("add", help="create an account (or update its role/name)")
    add.add_argument("email")
    add.add_argument("--admin", action="store_true", help="administrator (default: member)")
    add.add_argument("--name", help="display name")
    _password_options(add)
    add.set_defaults(func=cmd_add)

    password = users.add_parser("password", help="set a web password")
    password.add_argument("email")
    _password_options(password)
    password.set_defaults(func=cmd_password)

    token = users.add_parser("token", help="print a new API token (shown once)")
    token.add_argument("email")
    token.add_argument("--label", required=True, help="what the token is for")
    token.set_defaults(func=cmd_token)

    role = users.add_parser("role", help="make an account admin or member")
    role.add_argument("email")
    role.add_argument("role", choices=ROLES)
    role.set_defaults(func=cmd_role)

    for name, text in (("deactivate", "stop an account from signing in"),
                       ("activate", "let a deactivated account sign in again")):
        active = users.add_parser(name, help=text)
        active.add_argument("email")
        active.set_defaults(func=cmd_active)

    listing = users.add_parser("list", help="accounts, and addresses seen without one")
    listing.add_argument("--rules-file", type=Path,
                         help="internal domains from this rules file (default: the configured)")
    listing.set_defaults(func=cmd_list)

    for sub in (add, password, token, role, listing, *(
            users.choices[n] for n in ("deactivate", "activate"))):
        _common(sub)
