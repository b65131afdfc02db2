"""`sluice rules test FILE --data MAILDIR|MBOX|FOLDER|FILE`: the rule simulator's command.

It sits on top of the packages (it needs the classifier as well as the router, which may
import only core); the counting is `sluice.reports.simulate`. Messages are read with the
classifier's readers, one file at a time so that an unreadable file is reported as skipped
and the rest is still read; memory stays bounded whatever the size of the mailbox.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from sluice.classifier import readers
from sluice.core.errors import ConfigError
from sluice.core.mail import Mail
from sluice.reports.simulate import Classify, Skipped, format_text, mail_from_file, simulate


def register_rules_test(rules_commands: argparse._SubParsersAction[argparse.ArgumentParser],
                        ) -> None:
    """Add `test` to the `sluice rules` sub-commands (router/commands.py builds them)."""
    test = rules_commands.add_parser(
        "test", help="simulate a rules file on existing mail",
        description="Say what the rules would have done to the mail in a maildir, mbox, "
        "folder or message file: counts per action, destination, user and rule, and the "
        "reduction in inbox deliveries. Files carry no envelope: the recipients are the To, "
        "Cc and Bcc (when present) addresses.")
    test.add_argument("file", type=Path, metavar="FILE", help="the rules file")
    test.add_argument("--data", action="append", required=True, metavar="PATH",
                      help="a maildir, mbox, folder or message file (repeatable)")
    test.add_argument("--json", action="store_true", help="print the figures as JSON")
    test.add_argument("--no-classify", action="store_true",
                      help="decide without the classifier (rules on category never match)")
    test.add_argument("--model", type=Path, metavar="MODEL",
                      help="classifier model file (default: the shipped model)")
    test.set_defaults(func=run_test)


def _read_one(path: Path, name: str) -> Iterator[readers.Source | Skipped]:
    try:
        yield from readers.read_file(path, name)
    except OSError as exc:
        yield Skipped(name, f"unreadable: {exc.strerror or exc}")


def _maildir_files(folder: Path) -> Iterator[tuple[Path, str]]:
    for sub in ("new", "cur"):
        directory = folder / sub
        if directory.is_dir():
            for path in sorted(p for p in directory.iterdir() if p.is_file()):
                yield path, f"{sub}/{path.name}"


def _folder_files(folder: Path) -> Iterator[tuple[Path, str]]:
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            yield path, relative.as_posix()


def read_sources(paths: Iterable[str]) -> Iterator[readers.Source | Skipped]:
    """Every message under the given paths, named as `sluice classify` names them; what
    cannot be read is a `Skipped` with its reason instead of an end to the reading."""
    for given in paths:
        path = Path(given)
        if not path.exists():
            yield Skipped(given, "no such file or folder")
        elif not path.is_dir():
            yield from _read_one(path, given)
        elif readers.is_maildir(path):
            # Maildir files are messages, never mboxes (readers.read_maildir does the same).
            for file, relative in _maildir_files(path):
                name = f"{given.rstrip('/')}/{relative}"
                try:
                    yield readers.Source(name, file.read_bytes())
                except OSError as exc:
                    yield Skipped(name, f"unreadable: {exc.strerror or exc}")
        else:
            for file, relative in _folder_files(path):
                yield from _read_one(file, f"{given.rstrip('/')}/{relative}")


def messages(paths: Iterable[str]) -> Iterator[Mail | Skipped]:
    """Parsed messages (envelope from the headers) and skipped entries, one at a time."""
    for item in read_sources(paths):
        if isinstance(item, Skipped):
            yield item
        elif not item.raw.strip():
            yield Skipped(item.name, "empty file")
        else:
            mail = mail_from_file(item.raw)
            yield Skipped(item.name, "no recipient addresses in To, Cc or Bcc") \
                if not mail.envelope.rcpt_tos else mail


def run_test(args: argparse.Namespace) -> int:
    from sluice.router.rulesfile import RulesError, load_rules

    try:
        rules = load_rules(args.file)
    except RulesError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    classify: Classify | None = None
    if not args.no_classify:
        from sluice.gateway.wiring import load_classifier

        if args.model is not None and not args.model.is_file():
            raise ConfigError(f"--model: no model file at {args.model}")
        classifier = load_classifier(args.model)
        classify = classifier.classify
    sim = simulate(messages(args.data), rules, classify)
    if args.json:
        from sluice.reports.simulate import to_json

        print(json.dumps(to_json(sim, rules_file=str(args.file), data=args.data),
                         indent=2, ensure_ascii=False))
    else:
        print(format_text(sim, rules_file=str(args.file), data=args.data))
    if sim.messages == 0:
        print("sluice rules test: no message could be simulated", file=sys.stderr)
        return 1
    return 0
