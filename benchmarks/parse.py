"""Parser throughput: Sluice's stdlib-based parser against mail-parser, on real mail.

Run on demand (this is not a test):

    .venv/bin/python benchmarks/parse.py            # up to 1000 messages per corpus folder
    .venv/bin/python benchmarks/parse.py --quick    # 200 per folder, a few seconds
    .venv/bin/python benchmarks/parse.py --limit 0  # every message in the corpus

The messages are read from ``../shared/corpus`` (next to the repository) into memory
first, so only parsing is timed. Each parser runs over the same messages ``--repeats``
times; the median is reported. Three parsers:

- ``sluice``      ``sluice.core.parse.parse``: what the gateway runs on every message (stdlib
                  ``email`` with the compat32 policy, plus the extraction of addresses,
                  thread keys, text, attachments and calendar parts);
- ``mail-parser`` ``mailparser.parse_from_bytes`` (package mail-parser), the obvious
                  third-party alternative, which builds a similar view of a message;
- ``stdlib only`` ``email.message_from_bytes`` alone: the floor under Sluice's parser,
                  to show what the extraction on top costs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import email
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.policy import compat32
from importlib import metadata
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
#: The corpus folders, and how their message files are recognised.
FOLDERS: dict[str, Callable[[Path], bool]] = {
    "spamassassin_ham": lambda p: True,
    "enron_with_categories": lambda p: p.suffix == ".txt",
    "enron_inboxes": lambda p: True,
}


def load(folder: str, limit: int) -> list[bytes]:
    """The first `limit` messages of a corpus folder (sorted by path; 0 means all)."""
    accept = FOLDERS[folder]
    paths = sorted(p for p in (CORPUS / folder).rglob("*") if p.is_file() and accept(p))
    if limit:
        paths = paths[:limit]
    return [p.read_bytes() for p in paths]


def _parsers() -> dict[str, Callable[[bytes], Any]]:
    import mailparser

    from sluice.core.parse import parse

    def stdlib_only(raw: bytes) -> Any:
        return email.message_from_bytes(raw, policy=compat32)

    return {"sluice": parse, "mail-parser": mailparser.parse_from_bytes,
            "stdlib only": stdlib_only}


@dataclass
class Result:
    parser: str
    folder: str
    messages: int
    megabytes: float
    seconds: float  # median of the repeats
    errors: int

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def time_parser(fn: Callable[[bytes], Any], messages: list[bytes]) -> tuple[float, int]:
    errors = 0
    started = time.perf_counter()
    for raw in messages:
        try:
            fn(raw)
        except Exception:
            errors += 1
    return time.perf_counter() - started, errors


def run(limit: int, repeats: int) -> list[Result]:
    """Per folder, the parsers take turns within each repeat, so a change in the machine's
    load during the run hits all of them alike."""
    parsers = _parsers()
    results = []
    for folder in FOLDERS:
        messages = load(folder, limit)
        if not messages:
            continue
        size = sum(len(m) for m in messages) / 1e6
        for fn in parsers.values():
            fn(messages[0])  # imports and caches outside the timing
        runs: dict[str, list[tuple[float, int]]] = {name: [] for name in parsers}
        for _ in range(repeats):
            for name, fn in parsers.items():
                runs[name].append(time_parser(fn, messages))
        for name in parsers:
            seconds = statistics.median(s for s, _ in runs[name])
            results.append(Result(name, folder, len(messages), size, seconds, runs[name][0][1]))
            print(f"{folder:<22} {name:<12} {len(messages) / seconds:8.0f} msg/s", flush=True)
    return results


def report(results: list[Result]) -> str:
    rows = ["| corpus folder          | messages |   MB | sluice msg/s | mail-parser msg/s | "
            "stdlib only msg/s | sluice / mail-parser |",
            "|------------------------|---------:|-----:|-------------:|------------------:|"
            "------------------:|---------------------:|"]
    by = {(r.folder, r.parser): r for r in results}
    totals: dict[str, float] = {}
    count = 0
    for folder in FOLDERS:
        if (folder, "sluice") not in by:
            continue
        s, m, b = by[folder, "sluice"], by[folder, "mail-parser"], by[folder, "stdlib only"]
        count += s.messages
        for r in (s, m, b):
            totals[r.parser] = totals.get(r.parser, 0.0) + r.seconds
        rows.append(f"| {folder:<22} | {s.messages:8d} | {s.megabytes:4.1f} | {s.rate:12.0f} | "
                    f"{m.rate:17.0f} | {b.rate:17.0f} | {s.rate / m.rate:20.2f} |")
    if totals:
        s_all, m_all, b_all = (count / totals[p] for p in ("sluice", "mail-parser", "stdlib only"))
        rows.append(f"| {'all':<22} | {count:8d} |      | {s_all:12.0f} | {m_all:17.0f} | "
                    f"{b_all:17.0f} | {s_all / m_all:20.2f} |")
    errors = {r.parser: 0 for r in results}
    for r in results:
        errors[r.parser] += r.errors
    rows.append("\nexceptions raised: " + ", ".join(f"{p} {n}" for p, n in errors.items()))
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None,
                        help="messages per corpus folder, 0 for all (default 1000; 200 quick)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per parser (median)")
    parser.add_argument("--quick", action="store_true", help="fewer messages, a few seconds")
    args = parser.parse_args(argv)
    limit = args.limit if args.limit is not None else (200 if args.quick else 1000)
    if not CORPUS.is_dir():
        print(f"corpus not found at {CORPUS}", file=sys.stderr)
        return 1
    # mail-parser logs a warning for every MIME type it does not handle.
    logging.getLogger("mailparser").setLevel(logging.ERROR)
    print(f"date        {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(f"machine     {platform.machine()}, {os.cpu_count()} cores; python "
          f"{platform.python_version()}; mail-parser {metadata.version('mail-parser')}")
    print(f"corpus      {CORPUS}, up to {limit or 'all'} messages per folder, "
          f"{args.repeats} repeats, median")
    print(f"load avg    {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min) "
          "before the run\n")
    results = run(limit, args.repeats)
    print()
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
