"""`sluice analyze SOURCE...`: how much of a mailbox's mail the rules would take out of the
inboxes, and the habits behind it (reply-all storms, repeated attachments, re-sends).

SOURCE is an `imaps://user@host[:port]/FOLDER` or `imap://…` URL (password from
SLUICE_IMAP_PASSWORD or a prompt), a maildir, an mbox file, a message file or a folder of
them. The report goes to `--out` or standard output; progress to standard error when it is a
terminal. State (for resuming) is kept in `--state` (default: analyze-state.sqlite in the
data directory); the finished report is also stored in the database as the dashboard's
baseline unless `--no-store`.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from sluice.analyzer import Examiner, RunSpec, Setup, default_jobs, finish_run, run_analysis
from sluice.core.errors import ConfigError
from sluice.core.verdict import CATEGORIES
from sluice.mailboxes.items import DEFAULT_MAX_MESSAGE_BYTES
from sluice.mailboxes.sources import open_source
from sluice.reports.analysis import DEFAULT_READING_SECONDS, AnalysisSettings
from sluice.reports.analysis_export import render
from sluice.reports.analysis_state import AnalysisState

STATE_FILE = "analyze-state.sqlite"
FORMATS = ("html", "json", "csv")


class ProgressLine:
    """A one-line counter on a terminal: messages read, rate, elapsed (at most 5 redraws/s)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.started = time.monotonic()
        self.shown = 0.0
        self.first: int | None = None

    def __call__(self, counted: int) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = counted - 1
        if now - self.shown < 0.2:
            return
        self.shown = now
        elapsed = now - self.started
        rate = (counted - self.first) / elapsed if elapsed > 0 else 0.0
        self.stream.write(f"\ranalyzing: {counted:,} messages  {rate:,.0f}/s  "
                          f"{int(elapsed) // 60}:{int(elapsed) % 60:02d} ")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def _reading_seconds(values: list[str]) -> dict[str, float]:
    seconds = dict(DEFAULT_READING_SECONDS)
    for value in values:
        category, sep, number = value.partition("=")
        if not sep or category not in CATEGORIES:
            raise ConfigError(f"--reading-seconds: expected CATEGORY=SECONDS with a category "
                              f"of {', '.join(CATEGORIES)}, got {value!r}")
        try:
            seconds[category] = float(number)
        except ValueError as exc:
            raise ConfigError(f"--reading-seconds: not a number: {number!r}") from exc
    return seconds


def _setup(args: argparse.Namespace) -> Setup:
    """How messages are examined, with the rules file checked before anything is read."""
    from sluice.router.rulesfile import RulesError, parse_rules

    domains = tuple(sorted({d.lower() for d in args.internal_domain}))
    if args.model is not None and not args.model.is_file():
        raise ConfigError(f"--model: no model file at {args.model}")
    setup = Setup(internal_domains=domains, owner=(args.owner or "").lower(),
                  classify=not args.no_classify, model=args.model)
    if args.rules is None:
        return setup
    try:
        text = args.rules.read_text(encoding="utf-8")
        parse_rules(text, str(args.rules))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--rules: cannot read {args.rules}: {exc}") from exc
    except RulesError as exc:
        raise ConfigError("\n".join(exc.problems)) from exc
    return replace(setup, rules_name=str(args.rules), rules_text=text)


def cmd_analyze(args: argparse.Namespace) -> int:
    from sluice.core.settings import load_settings

    settings = load_settings(args.config, data_dir=args.data_dir,
                             database_url=args.database_url)
    setup = _setup(args)
    folders = tuple(args.folder)
    sources = [open_source(spec, folders=folders, max_bytes=args.max_size,
                           ca_file=args.ca_file) for spec in args.source]
    spec = RunSpec(
        sources=tuple(s.label for s in sources), folders=folders,
        max_message_bytes=args.max_size, setup=setup,
        settings=AnalysisSettings(
            storm_min_replies=args.storm_min_replies,
            storm_min_recipients=args.storm_min_recipients,
            resend_window_seconds=int(args.resend_window * 60), top=args.top,
            reading_seconds=_reading_seconds(args.reading_seconds)))
    jobs = args.jobs if args.jobs > 0 else default_jobs()
    examiner = Examiner(setup) if jobs == 1 else None
    state = AnalysisState(args.state or settings.data_dir / STATE_FILE)
    progress = ProgressLine(sys.stderr) if sys.stderr.isatty() else None
    try:
        info, report = run_analysis(spec, sources, state, examiner=examiner, jobs=jobs,
                                    progress=progress, flush_every=args.flush_every)
        if progress is not None:
            progress.close()
        text = render(report, args.format)
        if args.out is None:
            sys.stdout.write(text)
        else:
            args.out.write_text(text, encoding="utf-8")
        if not args.no_store:
            from sluice.core.db import init_schema, make_engine
            from sluice.reports.analysis_store import store_report

            engine = make_engine(settings)
            init_schema(engine)
            store_report(engine, report)
            engine.dispose()
        finish_run(state, info)
    finally:
        state.close()
    if report["messages"] == 0:
        print("sluice analyze: no message could be analyzed", file=sys.stderr)
        return 1
    return 0


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "analyze", help="how much mail would go away: analyze a mailbox",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="+", metavar="SOURCE",
                        help="imaps://user@host/FOLDER, imap://…, maildir, mbox, file, folder")
    parser.add_argument("--rules", type=Path, metavar="FILE",
                        help="rules file (default: divert broadcast, material, feedback, "
                        "event and automated to channels)")
    parser.add_argument("--internal-domain", action="append", default=[], metavar="DOMAIN",
                        help="a domain whose recipients have inboxes here (repeatable; "
                        "default: the rules file's, or every recipient's domain)")
    parser.add_argument("--owner", metavar="ADDR",
                        help="the mailbox owner: counted as a recipient of every message")
    parser.add_argument("--folder", action="append", default=[], metavar="F",
                        help="only this folder (repeatable; default: all folders)")
    parser.add_argument("--format", choices=FORMATS, default="html")
    parser.add_argument("--out", type=Path, metavar="FILE", help="default: standard output")
    parser.add_argument("--state", type=Path, metavar="DB",
                        help=f"resume state (default: DATA_DIR/{STATE_FILE})")
    parser.add_argument("--no-store", action="store_true",
                        help="do not store the results in the database")
    parser.add_argument("--max-size", type=int, default=DEFAULT_MAX_MESSAGE_BYTES,
                        metavar="BYTES", help="skip larger messages (default: %(default)s)")
    parser.add_argument("--ca-file", type=Path, metavar="PEM",
                        help="CA certificates to trust for the IMAP server's TLS")
    parser.add_argument("--reading-seconds", action="append", default=[],
                        metavar="CATEGORY=SECONDS",
                        help="assumed reading time per inbox copy (repeatable; defaults: "
                        + ", ".join(f"{c}={s:g}" for c, s in DEFAULT_READING_SECONDS.items())
                        + ")")
    defaults = AnalysisSettings()
    parser.add_argument("--storm-min-replies", type=int, default=defaults.storm_min_replies)
    parser.add_argument("--storm-min-recipients", type=int,
                        default=defaults.storm_min_recipients)
    parser.add_argument("--resend-window", type=float,
                        default=defaults.resend_window_seconds / 60, metavar="MINUTES",
                        help="a re-send to added recipients within this time counts")
    parser.add_argument("--top", type=int, default=defaults.top, help="length of top lists")
    parser.add_argument("--no-classify", action="store_true",
                        help="no classifier: rules on category never match")
    parser.add_argument("--model", type=Path, metavar="MODEL")
    parser.add_argument("--jobs", type=int, default=0, metavar="N",
                        help="worker processes that parse and classify (default 0: one per "
                        "CPU; 1: all in this process). Extra workers help only on CPUs "
                        "not busy with other work (docs/performance.md)")
    parser.add_argument("--flush-every", type=int, default=500, metavar="N",
                        help="messages per state commit (the work a hard kill loses)")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--database-url")
    parser.set_defaults(func=cmd_analyze)
