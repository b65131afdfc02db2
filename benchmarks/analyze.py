"""`sluice analyze` speed and memory: messages/s and peak memory, maildir and IMAP (Dovecot).

Run on demand (this is not a test; Dovecot needs root, as in the tests):

    .venv/bin/python benchmarks/analyze.py                         # 2,000 and 20,000 messages
    .venv/bin/python benchmarks/analyze.py --sizes 2000 100000 --imap-sizes 2000 20000
    .venv/bin/python benchmarks/analyze.py --sizes 20000 --imap-sizes --jobs 2
    .venv/bin/python benchmarks/analyze.py --sizes 5000 --imap-sizes 2000 --before OLD/src

A maildir of N messages is generated from the corpus (enron_inboxes, cycled, each copy with
its own Message-ID so none is skipped as a duplicate). Each measurement runs in its own child
process; peak memory is that child's VmHWM (plus the largest worker's peak with --jobs > 1),
CPU is the child's and its workers' user + system seconds per message (steadier than msg/s
on a shared machine), and the load average is printed beside every row. Two baselines,
measured in the same run on the same mailbox: the raw read (the reader alone) and parse-only
(reader + the same parse as the analyzer, in one process); `analyze / parse` compares runs
made under different loads. Each analysis runs once per `--jobs` value (default: 1 and one
worker per CPU). Targets (issue 6): >= 1,000 msg/s from a maildir, >= 300 msg/s from a local
Dovecot, and peak memory that does not grow with the mailbox.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus" / "enron_inboxes"
TARGET_MAILDIR = 1000.0
TARGET_IMAP = 300.0
_MSGID = re.compile(rb"^Message-ID:[^\r\n]*\r?\n", re.IGNORECASE | re.MULTILINE)

#: Runs in the child: one analysis (or raw read, or parse-only pass) of one source; prints
#: messages, seconds and CPU seconds.
_CHILD = """
import json, sys, time
from pathlib import Path
mode, spec, state, password, jobs = sys.argv[1:6]
from sluice.mailboxes.sources import open_source
source = open_source(spec, password=password or None)
import resource
def cpu_seconds(who):
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime
cpu_before = cpu_seconds(resource.RUSAGE_SELF)  # interpreter start-up and imports left out
started = time.perf_counter()
if mode == "raw":
    count = sum(1 for _ in source.read())
elif mode == "parse":
    from sluice.reports.simulate import mail_from_file
    count = 0
    for item in source.read():
        count += 1
        if hasattr(item, "raw"):
            mail_from_file(item.raw)
else:
    from sluice.analyzer import Examiner, RunSpec, Setup, finish_run, run_analysis
    from sluice.reports.analysis_state import AnalysisState
    setup = Setup()
    st = AnalysisState(Path(state))
    spec_ = RunSpec(sources=(source.label,), folders=(), max_message_bytes=25 << 20, setup=setup)
    info, report = run_analysis(spec_, [source], st, jobs=int(jobs),
                                examiner=Examiner(setup) if int(jobs) == 1 else None)
    finish_run(st, info)
    count = report["messages"] + report["skipped"]["count"]
seconds = time.perf_counter() - started
status = Path("/proc/self/status").read_text()
hwm_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
cpu = (cpu_seconds(resource.RUSAGE_SELF) - cpu_before
       + cpu_seconds(resource.RUSAGE_CHILDREN))
workers_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"messages": count, "seconds": seconds, "hwm_kb": hwm_kb,
                  "workers_kb": workers_kb, "cpu": cpu}))
"""


def corpus_messages() -> list[bytes]:
    return [p.read_bytes() for p in sorted(CORPUS.rglob("*")) if p.is_file()]


def build_maildir(root: Path, size: int, pool: list[bytes]) -> Path:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for index in range(size):
        raw = _MSGID.sub(b"", pool[index % len(pool)], count=1)
        raw = f"Message-ID: <bench-{index}@sluice.invalid>\n".encode() + raw
        (root / "new" / f"1700000000.M{index}P1.bench").write_bytes(raw)
    return root


@dataclass(frozen=True)
class Measure:
    rate: float  # messages/s, wall clock
    peak_mb: float
    messages: int
    cpu_ms: float  # CPU milliseconds per message, the child and its workers
    load: float  # one-minute load average when the child ended


def measure(mode: str, spec: str, work: Path, *, password: str = "", jobs: int = 1,
            src: Path = REPO / "src") -> Measure:
    """One child process: read, parse or analyze `spec` with the sluice package in `src`."""
    state = work / f"state-{time.monotonic_ns()}.sqlite"
    env = dict(os.environ, PYTHONPATH=str(src))
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, mode, spec, str(state), password,
                             str(jobs)], stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    out = proc.stdout.read()
    if proc.wait() != 0:
        raise SystemExit(f"child failed ({mode} {spec})")
    result = json.loads(out)
    # VmHWM: the child's own peak after exec (ru_maxrss would include this parent's pages
    # copied at fork); worker processes, if any, count with their largest peak.
    peak_kb = result["hwm_kb"] + result["workers_kb"]
    count = result["messages"]
    return Measure(count / result["seconds"], peak_kb / 1024, count,
                   1000 * result["cpu"] / max(count, 1), os.getloadavg()[0])


@dataclass(frozen=True)
class Row:
    kind: str
    size: int
    jobs: str
    raw: Measure
    parse: Measure
    run: Measure
    target: float


def _rows(kind: str, size: int, spec: str, work: Path, jobs: list[int], target: float,
          password: str = "", before: Path | None = None) -> list[Row]:
    """Baselines, then each jobs count (with `before`: the older tree's run right after)."""
    raw = measure("raw", spec, work, password=password)
    parse = measure("parse", spec, work, password=password)
    rows = []
    for n in jobs:
        rows.append(Row(kind, size, str(n), raw, parse,
                        measure("analyze", spec, work, password=password, jobs=n), target))
        if before is not None:
            rows.append(Row(kind, size, f"{n} old", raw, parse,
                            measure("analyze", spec, work, password=password, jobs=n,
                                    src=before), target))
    return rows


def main() -> int:
    sys.path.insert(0, str(REPO / "src"))
    from sluice.analyzer import default_jobs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[2000, 20000])
    parser.add_argument("--imap-sizes", type=int, nargs="*", default=[2000, 20000],
                        help="IMAP mailbox sizes (none, or 0: no IMAP run)")
    parser.add_argument("--jobs", type=int, nargs="+",
                        default=sorted({1, default_jobs()}),
                        help="worker process counts to measure (default: 1 and one per CPU)")
    parser.add_argument("--before", type=Path, metavar="SRC",
                        help="also measure the analysis with the package in SRC (an older "
                        "tree, e.g. `git archive COMMIT src | tar -x -C DIR`, then DIR/src), "
                        "interleaved with the current one: rows marked `old`")
    args = parser.parse_args()
    args.imap_sizes = [n for n in args.imap_sizes if n > 0]
    args.sizes = [n for n in args.sizes if n > 0]
    pool = corpus_messages()
    work = Path(tempfile.mkdtemp(prefix="sluice-bench-analyze-"))
    rows: list[Row] = []
    print(f"date        {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"machine     {platform.machine()}, {os.cpu_count()} cores; python "
          f"{platform.python_version()}; jobs {' '.join(map(str, args.jobs))}")
    print(f"load avg    {' '.join(f'{x:.2f}' for x in os.getloadavg())} before the run")
    print(f"mail        generated from enron_inboxes ({len(pool)} messages cycled)")
    try:
        for size in args.sizes:
            root = build_maildir(work / f"md-{size}", size, pool)
            rows += _rows("maildir", size, str(root), work, args.jobs, TARGET_MAILDIR,
                          before=args.before)
            shutil.rmtree(root)
        if args.imap_sizes:
            sys.path.insert(0, str(REPO))
            from tests.dovecot import PASSWORD, Dovecot

            server = Dovecot()
            try:
                for size in args.imap_sizes:
                    server.clear()
                    build_maildir(server.maildir, size, pool)
                    server.chown()
                    measure("raw", server.url("INBOX"), work, password=PASSWORD)  # indexes
                    rows += _rows("imap", size, server.url("INBOX"), work, args.jobs,
                                  TARGET_IMAP, PASSWORD, args.before)
            finally:
                server.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load avg    {' '.join(f'{x:.2f}' for x in os.getloadavg())} after the run")
    print()
    print("| source  | mailbox |  jobs | raw msg/s | parse msg/s | analyze msg/s | target "
          "| analyze / parse | CPU ms/msg parse | CPU ms/msg analyze | load | peak MB "
          "analyze | peak MB raw |")
    print("|---------|--------:|------:|----------:|------------:|--------------:|-------:"
          "|----------------:|-----------------:|-------------------:|-----:|--------"
          "--------:|------------:|")
    for r in rows:
        print(f"| {r.kind:7} | {r.size:7} | {r.jobs:>5} | {r.raw.rate:9.0f} "
              f"| {r.parse.rate:11.0f} | {r.run.rate:13.0f} | {r.target:6.0f} "
              f"| {r.run.rate / r.parse.rate:15.2f} | {r.parse.cpu_ms:16.3f} "
              f"| {r.run.cpu_ms:18.3f} | {r.run.load:4.1f} | {r.run.peak_mb:15.1f} "
              f"| {r.raw.peak_mb:11.1f} |")
    for kind in ("maildir", "imap"):
        for jobs in args.jobs:
            sized = [r for r in rows if r.kind == kind and r.jobs == str(jobs)]
            if len(sized) >= 2:
                small, large = sized[0], sized[-1]
                print(f"{kind}, jobs {jobs}: {large.size / small.size:.0f}x the messages -> "
                      f"peak memory x{large.run.peak_mb / small.run.peak_mb:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
