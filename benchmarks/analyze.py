"""`sluice analyze` speed and memory: messages/s and peak memory, maildir and IMAP (Dovecot).

Run on demand (this is not a test; Dovecot needs root, as in the tests):

    .venv/bin/python benchmarks/analyze.py                         # 2,000 and 20,000 messages
    .venv/bin/python benchmarks/analyze.py --sizes 2000 100000 --imap-sizes 2000 20000

A maildir of N messages is generated from the corpus (enron_inboxes, cycled, each copy with
its own Message-ID so none is skipped as a duplicate). Each measurement runs in its own child
process; peak memory is that child's VmHWM (plus the largest worker's peak with --jobs > 1).
The baseline, measured in the same run on the same mailbox, is the raw read: the same
reader walking every message without parsing, classifying or counting. Targets (issue 6):
>= 1,000 msg/s from a maildir, >= 300 msg/s from a local Dovecot, and peak memory that does
not grow with the mailbox.
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus" / "enron_inboxes"
TARGET_MAILDIR = 1000.0
TARGET_IMAP = 300.0
_MSGID = re.compile(rb"^Message-ID:[^\r\n]*\r?\n", re.IGNORECASE | re.MULTILINE)

#: Runs in the child: one analysis (or raw read) of one source; prints messages and seconds.
_CHILD = """
import json, sys, time
from pathlib import Path
mode, spec, state, password, jobs = sys.argv[1:6]
from sluice.mailboxes.sources import open_source
source = open_source(spec, password=password or None)
started = time.perf_counter()
if mode == "raw":
    count = sum(1 for _ in source.read())
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
import resource
workers_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"messages": count, "seconds": seconds, "hwm_kb": hwm_kb,
                  "workers_kb": workers_kb}))
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


def measure(mode: str, spec: str, work: Path, *, password: str = "", jobs: int = 1
            ) -> tuple[float, float, int]:
    """(messages/s, peak RSS in MB, messages) of one child process."""
    state = work / f"state-{time.monotonic_ns()}.sqlite"
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
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
    return result["messages"] / result["seconds"], peak_kb / 1024, result["messages"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--imap-sizes", type=int, nargs="*", default=[2000, 20000])
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes for parse + classify (default 1)")
    args = parser.parse_args()
    pool = corpus_messages()
    work = Path(tempfile.mkdtemp(prefix="sluice-bench-analyze-"))
    rows = []
    print(f"date        {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"machine     {platform.machine()}, {os.cpu_count()} cores; python "
          f"{platform.python_version()}; jobs {args.jobs}")
    print(f"load avg    {' '.join(f'{x:.2f}' for x in os.getloadavg())} before the run")
    print(f"mail        generated from enron_inboxes ({len(pool)} messages cycled)")
    try:
        for size in args.sizes:
            root = build_maildir(work / f"md-{size}", size, pool)
            raw_rate, raw_mb, _ = measure("raw", str(root), work)
            rate, mb, count = measure("analyze", str(root), work, jobs=args.jobs)
            rows.append(("maildir", size, count, raw_rate, rate, mb, raw_mb, TARGET_MAILDIR))
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
                    raw_rate, raw_mb, _ = measure("raw", server.url("INBOX"), work,
                                                  password=PASSWORD)
                    rate, mb, count = measure("analyze", server.url("INBOX"), work,
                                              password=PASSWORD, jobs=args.jobs)
                    rows.append(("imap", size, count, raw_rate, rate, mb, raw_mb, TARGET_IMAP))
            finally:
                server.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("| source  | mailbox | read | raw read msg/s | analyze msg/s | analyze / raw "
          "| target msg/s | peak MB analyze | peak MB raw |")
    print("|---------|--------:|-----:|---------------:|--------------:|--------------:"
          "|-------------:|----------------:|------------:|")
    for kind, size, count, raw_rate, rate, mb, raw_mb, target in rows:
        print(f"| {kind:7} | {size:7} | {count:4} | {raw_rate:14.0f} | {rate:13.0f} "
              f"| {rate / raw_rate:13.2f} | {target:12.0f} | {mb:15.1f} | {raw_mb:11.1f} |")
    for kind in ("maildir", "imap"):
        sized = [r for r in rows if r[0] == kind]
        if len(sized) >= 2:
            small, large = sized[0], sized[-1]
            print(f"{kind}: {large[1] / small[1]:.0f}x the messages -> peak memory "
                  f"x{large[5] / small[5]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
