"""Classifier speed: µs per message, one at a time and in batches, with and without parsing.

Run on demand (this is not a test):

    .venv/bin/python benchmarks/classify.py             # the 4 KB message of issue 3
    .venv/bin/python benchmarks/classify.py --corpus 300  # also real corpus mail
    git archive COMMIT src | tar -x -C OLD              # an older tree to compare with
    .venv/bin/python benchmarks/classify.py --corpus 300 --before OLD/src

Targets (issue 3), for a 4 KB message one at a time on this machine: classification under
0.5 ms, parse + classify under 1.5 ms. The message is a typical 4 KB, 5-part business mail
(text and HTML alternatives, a PDF, an inline logo and a calendar invitation), built here so
the run needs nothing else. One at a time, each message is counted into a sender history
as the gateway counts it (distinct Message-IDs); a row without it is shown beside. Each
measurement is the median of `--repeats` runs, in wall time and in CPU time (steadier on a
loaded machine: time spent waiting for a core is left out). `--corpus` adds real Enron inbox
mail and its 40 longest messages. `--before SRC` measures the package in SRC too, each run in
its own process, alternating old and current `--rounds` times, and prints the ratio
current / old of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
TARGET_CLASSIFY_US = 500.0
TARGET_PARSE_CLASSIFY_US = 1500.0

_TEXT = """Hi Dana, Lee,

following up on Tuesday's call with Northwind: they want the revised price list before the
review on Thursday, and they asked whether the volume discount can start in Q3 instead of Q4.
Could you check the margins on the two bundles below and tell me by Wednesday noon whether
we can agree? If not, I would propose a smaller discount (4% instead of 6%) for the first
two quarters and the full one afterwards.

  Bundle A  - 120 seats, 3 years, support plus
  Bundle B  - 80 seats, 2 years, standard support

The PDF is attached, and the invitation for Thursday's review; please accept it.

Thanks,
Sam

> On Mon, Dana wrote:
> Can we get the numbers before the review? Northwind is asking again.
"""

_CALENDAR = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Sluice//bench//EN
METHOD:REQUEST
BEGIN:VEVENT
UID:bench-1@example.com
DTSTART:20260312T140000Z
DTEND:20260312T150000Z
SUMMARY:Northwind price review
ORGANIZER:mailto:sam@example.com
ATTENDEE:mailto:dana@example.com
END:VEVENT
END:VCALENDAR
"""


def four_kb_message() -> bytes:
    """A 4 KB, 5-part message: text, HTML, PDF, inline image, calendar invitation."""
    msg = EmailMessage()
    msg["From"] = "Sam Field <sam@example.com>"
    msg["To"] = "Dana Reed <dana@example.com>, Lee Park <lee@example.com>"
    msg["Cc"] = "sales-team@example.com"
    msg["Subject"] = "Re: Northwind revised price list and Q3 discount"
    msg["Message-ID"] = make_msgid(domain="example.com")
    msg["In-Reply-To"] = "<prev-1@example.com>"
    msg["References"] = "<root-1@example.com> <prev-1@example.com>"
    msg["Date"] = "Mon, 09 Mar 2026 09:12:00 +0000"
    msg.set_content(_TEXT)
    paragraphs = "".join(f"<p>{line}</p>" for line in _TEXT.splitlines())
    html = f"<html><body>{paragraphs}</body></html>"
    msg.add_alternative(html, subtype="html")
    msg.add_attachment(b"%PDF-1.4\n" + bytes(range(256)) + bytes(80), maintype="application",
                       subtype="pdf", filename="Northwind price list v3.pdf")
    msg.add_attachment(b"\x89PNG\r\n\x1a\n" + bytes(200), maintype="image", subtype="png",
                       filename="logo.png", disposition="inline", cid="<logo@example.com>")
    msg.add_attachment(_CALENDAR.encode(), maintype="text", subtype="calendar",
                       params={"method": "REQUEST"}, filename="invite.ics")
    return msg.as_bytes()


def _median_us(run: Callable[[], object], per_call: int, repeats: int) -> tuple[float, float]:
    """(wall, CPU) µs per message: medians over `repeats` runs."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        cpu.append((time.process_time() - start_cpu) / per_call * 1e6)
        wall.append((time.perf_counter() - start) / per_call * 1e6)
    return statistics.median(wall), statistics.median(cpu)


def _corpus_paths() -> list[Path]:
    return sorted(p for p in (CORPUS / "enron_inboxes").rglob("*") if p.is_file())


def _corpus_sample(limit: int) -> list[bytes]:
    paths = _corpus_paths()
    step = max(1, len(paths) // limit)
    return [p.read_bytes() for p in paths[::step][:limit]]


def _longest(count: int) -> list[bytes]:
    paths = sorted(_corpus_paths(), key=lambda p: (-p.stat().st_size, p))
    return [p.read_bytes() for p in paths[:count]]


Row = tuple[str, float, float, float | None]


def measure(args: argparse.Namespace) -> tuple[list[str], list[Row]]:
    """Header lines and rows (name, wall µs, CPU µs, target µs or None)."""
    start = time.perf_counter()
    from sluice.classifier.history import SenderHistory
    from sluice.classifier.model import Classifier
    from sluice.core.parse import parse

    classifier = Classifier.load_default()
    loaded_ms = (time.perf_counter() - start) * 1e3
    raw = four_kb_message()
    mail = parse(raw)
    verdict = classifier.classify(mail)
    header = [
        f"python {sys.version.split()[0]}; model {classifier.version}; import + "
        f"load_default {loaded_ms:.0f} ms",
        f"message: {len(raw)} bytes, {len(mail.attachments)} attachment(s), "
        f"{mail.inline_images} inline image(s), {len(mail.calendar)} calendar part(s) -> "
        f"{verdict.category} ({verdict.confidence:.2f}): {'; '.join(verdict.reasons)}",
    ]

    # The gateway classifies with the sender history (classifier/history.py), counting each
    # message into it: distinct Message-IDs, or every message after the first is a copy.
    marker = mail.message_id.encode()
    assert marker and marker in raw
    distinct_raws = [raw.replace(marker, f"<bench-{i}@example.com>".encode())
                     for i in range(args.single)]
    distinct = [parse(r) for r in distinct_raws]

    def single_classify() -> None:
        history = SenderHistory()
        for message in distinct:
            classifier.classify(message, history)

    def single_plain() -> None:
        for message in distinct:
            classifier.classify(message)

    def single_same() -> None:
        for _ in range(args.single):
            classifier.classify(mail)

    def single_both() -> None:
        history = SenderHistory()
        for message in distinct_raws:
            classifier.classify(parse(message), history)

    mails = [mail] * args.batch
    raws = [raw] * args.batch

    def batch_classify() -> None:
        classifier.classify_many(mails)

    def batch_both() -> None:
        classifier.classify_many([parse(r) for r in raws])

    def parse_only() -> None:
        for _ in range(args.single):
            parse(raw)

    few = max(3, args.repeats // 2)
    rows: list[Row] = [
        ("parse only, one at a time", *_median_us(parse_only, args.single, args.repeats), None),
        ("classify, one at a time", *_median_us(single_classify, args.single, args.repeats),
         TARGET_CLASSIFY_US),
        ("classify, one at a time, no sender history",
         *_median_us(single_plain, args.single, args.repeats), None),
        ("classify one message again and again, no history",
         *_median_us(single_same, args.single, args.repeats), None),
        ("parse + classify, one at a time",
         *_median_us(single_both, args.single, args.repeats), TARGET_PARSE_CLASSIFY_US),
        (f"classify, batches of {args.batch}", *_median_us(batch_classify, args.batch, few),
         None),
        (f"parse + classify, batches of {args.batch}",
         *_median_us(batch_both, args.batch, few), None),
    ]
    if args.corpus:
        sample = _corpus_sample(args.corpus)
        parsed = [parse(r) for r in sample]
        size = statistics.median(len(r) for r in sample)
        rows.append((f"corpus ({len(sample)} Enron inbox mails, median {size / 1024:.1f} KB): "
                     "classify", *_median_us(lambda: classifier.classify_many(parsed),
                                             len(sample), 3), None))
        rows.append(("corpus: parse + classify",
                     *_median_us(lambda: [classifier.classify(parse(r)) for r in sample],
                                 len(sample), 3), None))
        longest = _longest(40)
        long_parsed = [parse(r) for r in longest]
        rows.append((f"corpus: its 40 longest ({len(longest[-1]) // 1024}-"
                     f"{len(longest[0]) // 1024} KB): classify",
                     *_median_us(lambda: [classifier.classify(m) for m in long_parsed],
                                 len(longest), 3), None))
    return header, rows


def _child(args: argparse.Namespace, src: Path | None) -> dict[str, object]:
    """One `measure` in a fresh process, with the package from `src` (None: this tree)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src.resolve())
    argv = [sys.executable, __file__, "--json", "--repeats", str(args.repeats), "--single",
            str(args.single), "--batch", str(args.batch), "--corpus", str(args.corpus)]
    done = subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _compare(args: argparse.Namespace) -> int:
    print(f"load avg {' '.join(f'{x:.2f}' for x in os.getloadavg())} before the run")
    runs: dict[str, list[dict[str, object]]] = {"old": [], "new": []}
    for _ in range(args.rounds):
        runs["old"].append(_child(args, args.before))
        runs["new"].append(_child(args, None))
    print(f"load avg {' '.join(f'{x:.2f}' for x in os.getloadavg())} after the run")
    for line in runs["new"][0]["header"]:  # type: ignore[attr-defined]
        print(line)
    names = [row[0] for row in runs["new"][0]["rows"]]  # type: ignore[attr-defined]

    def median(kind: str, i: int, column: int) -> float:
        return statistics.median(run["rows"][i][column] for run in runs[kind])  # type: ignore[index]

    width = max(len(n) for n in names) + 2
    print(f"medians of {args.rounds} alternating runs per tree; µs/message")
    print(f"{'measurement':<{width}}{'old wall':>10}{'new wall':>10}{'ratio':>7}"
          f"{'old CPU':>10}{'new CPU':>10}{'ratio':>7}")
    for i, name in enumerate(names):
        old_wall, new_wall = median("old", i, 1), median("new", i, 1)
        old_cpu, new_cpu = median("old", i, 2), median("new", i, 2)
        print(f"{name:<{width}}{old_wall:>10.1f}{new_wall:>10.1f}{new_wall / old_wall:>7.2f}"
              f"{old_cpu:>10.1f}{new_cpu:>10.1f}{new_cpu / old_cpu:>7.2f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--single", type=int, default=300, help="one-at-a-time calls per run")
    ap.add_argument("--batch", type=int, default=1000, help="batch size")
    ap.add_argument("--corpus", type=int, default=0, help="also time N corpus messages")
    ap.add_argument("--before", type=Path, metavar="SRC",
                    help="also measure the package in SRC (an older tree's src/)")
    ap.add_argument("--rounds", type=int, default=3, help="with --before: runs per tree")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.before is not None:
        return _compare(args)
    header, rows = measure(args)
    if args.json:
        print(json.dumps({"header": header, "rows": rows}))
        return 0
    for line in header:
        print(line)
    width = max(len(r[0]) for r in rows) + 2
    print(f"{'measurement':<{width}}{'µs/message':>12}{'CPU µs':>10}{'target':>10}{'ratio':>8}")
    for name, us, cpu, target in rows:
        if target:
            print(f"{name:<{width}}{us:>12.1f}{cpu:>10.1f}{target:>10.0f}{us / target:>8.2f}")
        else:
            print(f"{name:<{width}}{us:>12.1f}{cpu:>10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
