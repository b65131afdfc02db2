"""Scale-out on PostgreSQL: throughput with one and with two gateway nodes, same run.

Run on demand (this is not a test); docs/performance.md has the method and the figures:

    .venv/bin/python benchmarks/scale.py                  # 3 repeats of 2,000 messages
    .venv/bin/python benchmarks/scale.py --quick          # smoke run, about a minute
    .venv/bin/python benchmarks/scale.py --messages 4000 --sessions 40 --repeats 5

One PostgreSQL cluster (tests/pg.py: Debian's binaries, a cluster of its own, fsync and
synchronous_commit on) and one smtp-sink serve both shapes:

- ``1 node``  one ``sluice gateway --no-worker`` and one ``sluice worker``;
- ``2 nodes`` two ``sluice gateway --no-worker`` and one ``sluice worker``;

each shape on a database of its own, all processes started before the first run. The load
is Postfix's smtp-source with the same total number of sessions for both shapes, spread
evenly over the nodes, half the messages under a ``[div]`` subject (two of the three
recipients diverted to a space channel by the policy, the third keeps the mail), half
plain (all three keep it). Repeats alternate the shapes back to back; the scaling factor
is the median of the per-repeat ratios, so a change of load on the machine between repeats
cancels out better. A run counts only if every smtp-source exits 0 (every message 250)
and the sink's counter grew by exactly the number of messages; the outbox is drained
before the next run, and the rate until drained is printed too.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.pg import PostgresServer  # noqa: E402

from relay import (  # noqa: E402  (a sibling script, found through the path above)
    BenchmarkError,
    Child,
    Sink,
    cpu_seconds,
    find_binary,
    free_port,
    load_average,
)

RULES = """\
internal_domains: [bench.example]
destinations:
  bench-space: {kind: space}
policy:
  - {name: divert-div, match: {sender_domain: bench.example, subject: "^\\\\[div\\\\]"},
     action: divert, to: bench-space}
users:
  3src@bench.example:
    - {action: deliver}
"""
SHAPES = (1, 2)


@dataclass
class Shape:
    """One deployment shape: its gateways and its worker on a database of its own."""

    nodes: int
    database_url: str
    gateways: list[Child] = field(default_factory=list)
    worker: subprocess.Popen[bytes] | None = None
    rates: list[float] = field(default_factory=list)
    drained: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)

    def stop(self) -> None:
        for child in self.gateways:
            child.stop()
        if self.worker is not None and self.worker.poll() is None:
            self.worker.terminate()
            try:
                self.worker.wait(30)
            except subprocess.TimeoutExpired:
                self.worker.kill()


def node_args(command: str, shape: Shape, upstream: str, rules: Path, folder: Path) -> list[str]:
    return [sys.executable, "-m", "sluice.cli", command, "--data-dir", str(folder),
            "--database-url", shape.database_url, "--upstream", upstream,
            "--rules", str(rules), "--no-classify", "--hostname", folder.name]


def start_shape(shape: Shape, sink: Sink, rules: Path, workdir: Path) -> None:
    for n in range(shape.nodes):
        folder = workdir / f"shape{shape.nodes}-gw{n}"
        port = free_port()
        args = [*node_args("gateway", shape, sink.address, rules, folder),
                "--listen", f"127.0.0.1:{port}", "--no-worker"]
        shape.gateways.append(Child(f"gateway {n}", args, workdir / f"{folder.name}.log", port))
    folder = workdir / f"shape{shape.nodes}-worker"
    with open(workdir / f"{folder.name}.log", "ab") as log:
        shape.worker = subprocess.Popen(node_args("worker", shape, sink.address, rules, folder),
                                        stdout=log, stderr=subprocess.STDOUT)


def pending_jobs(url: str) -> int:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        row = conn.execute("SELECT count(*) FROM outbox_job WHERE state <> 'done'").fetchone()
    return int(row[0]) if row else 0


def source_command(port: int, count: int, sessions: int, subject: str,
                   length: int) -> list[str]:
    return [find_binary("smtp-source"), "-d", "-s", str(sessions), "-m", str(count),
            "-l", str(length), "-f", "sender@bench.example", "-t", "src@bench.example",
            "-r", "3", "-S", subject, "-M", "bench.example", f"127.0.0.1:{port}"]


def run_once(shape: Shape, sink: Sink, *, messages: int, sessions: int, length: int) -> None:
    """One measured run: the messages split evenly over the nodes and the two kinds."""
    parts = [(g.port, kind) for g in shape.gateways for kind in ("[div] bench", "plain bench")]
    counts = [messages // len(parts) + (1 if i < messages % len(parts) else 0)
              for i in range(len(parts))]
    per_part = max(sessions // len(parts), 1)
    before = sink.count()
    cpu_before = sum(g.cpu() for g in shape.gateways)
    started = time.perf_counter()
    procs = [subprocess.Popen(source_command(port, count, per_part, subject, length),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for (port, subject), count in zip(parts, counts, strict=True)]
    errors = []
    for proc in procs:
        _, err = proc.communicate(timeout=900)
        if proc.returncode != 0:
            errors.append(err.decode(errors="replace").strip()[-300:])
    elapsed = time.perf_counter() - started
    if errors:
        raise BenchmarkError(f"smtp-source failed: {errors}")
    cpu = sum(g.cpu() for g in shape.gateways) - cpu_before
    arrived = sink.wait_count(before + messages, timeout=30) - before
    if arrived != messages:
        raise BenchmarkError(f"sent {messages} messages, smtp-sink received {arrived}")
    deadline = time.monotonic() + 600
    while pending_jobs(shape.database_url) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pending_jobs(shape.database_url):
        raise BenchmarkError("the outbox did not drain within 10 minutes")
    shape.rates.append(messages / elapsed)
    shape.drained.append(messages / (time.perf_counter() - started))
    shape.cpu_ms.append(1000 * cpu / messages)


def postgres_version(server: PostgresServer) -> str:
    import psycopg

    with psycopg.connect(server.url().replace("postgresql+psycopg://", "postgresql://")) as c:
        row = c.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def run(args: argparse.Namespace) -> list[Shape]:
    workdir = Path(tempfile.mkdtemp(prefix="sluice-scale-"))
    workdir.chmod(0o755)
    rules = workdir / "rules.yaml"
    rules.write_text(RULES)
    server = PostgresServer()
    sink: Sink | None = None
    shapes = [Shape(n, server.new_database()) for n in SHAPES]
    try:
        sink = Sink(workdir)
        print(f"date        {time.strftime('%Y-%m-%d %H:%M %Z')}")
        print(f"machine     {platform.machine()}, {os.cpu_count()} cores; python "
              f"{platform.python_version()}; PostgreSQL {postgres_version(server)} "
              "(fsync, synchronous_commit on)")
        print(f"load avg    {load_average()} before the run")
        print(f"load        smtp-source -d, {args.messages} messages per run, "
              f"{args.sessions} sessions in all, {args.length} bytes of body, 3 recipients; "
              "half [div] (2 of 3 diverted), half plain")
        for shape in shapes:
            start_shape(shape, sink, rules, workdir)
        for shape in shapes:  # warm-up: connections, caches, the first pages of each table
            run_once(shape, sink, messages=max(args.messages // 10, 40),
                     sessions=args.sessions, length=args.length)
            for figures in (shape.rates, shape.drained, shape.cpu_ms):
                figures.clear()
        for repeat in range(args.repeats):
            for shape in shapes:
                run_once(shape, sink, messages=args.messages, sessions=args.sessions,
                         length=args.length)
                print(f"repeat {repeat + 1}: {shape.nodes} node(s) {shape.rates[-1]:7.1f} msg/s "
                      f"acknowledged, {shape.drained[-1]:7.1f} msg/s until the outbox "
                      "drained", flush=True)
        if shapes[0].worker is not None:
            print(f"worker CPU  {cpu_seconds(shapes[0].worker.pid):.1f} s (1-node shape)")
    finally:
        for shape in shapes:
            shape.stop()
        if sink is not None:
            sink.stop()
        server.stop()
    return shapes


def report(shapes: list[Shape]) -> str:
    one, two = shapes
    ratios = [b / a for a, b in zip(one.rates, two.rates, strict=True)]
    drained = [b / a for a, b in zip(one.drained, two.drained, strict=True)]
    lines = ["", "| gateway nodes | msg/s acknowledged (median, min-max) | msg/s until drained "
             "| gateway CPU ms/msg |", "|---:|---:|---:|---:|"]
    for shape in shapes:
        lines.append(f"| {shape.nodes} | {statistics.median(shape.rates):.1f} "
                     f"({min(shape.rates):.1f}-{max(shape.rates):.1f}) | "
                     f"{statistics.median(shape.drained):.1f} | "
                     f"{statistics.median(shape.cpu_ms):.2f} |")
    lines.append(f"scaling factor 2 nodes / 1 node: {statistics.median(ratios):.2f} "
                 f"acknowledged (per repeat {', '.join(f'{r:.2f}' for r in ratios)}), "
                 f"{statistics.median(drained):.2f} until drained")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=20, help="in all, over every node")
    parser.add_argument("--length", type=int, default=2000, help="body bytes (smtp-source -l)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="400 messages, one repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.repeats = 400, 1
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    try:
        shapes = run(args)
    except BenchmarkError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print(report(shapes))
    print(f"\n(total {time.monotonic() - started:.0f} s; load avg after the run "
          f"{load_average()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
