"""Long fuzz runs of parse → classify → decide with atheris (coverage-guided libFuzzer).

On demand, not part of the test suite (which runs the same mutations with hypothesis for a
short budget, tests/fuzz/test_pipeline.py). Needs the optional extra: `pip install -e
'.[fuzz]'` and the shared corpus beside the checkout.

    .venv/bin/python scripts/fuzz_pipeline.py --seconds 600            # structured mutations
    .venv/bin/python scripts/fuzz_pipeline.py --seconds 600 --mode raw  # libFuzzer byte mutations
                                                                        # of the corpus seeds

structured: libFuzzer's input is the list of choices the mutations of tests/fuzz/mutations.py
make (which seed, which damage, where), so coverage guides the hostile-MIME generator.
raw: libFuzzer mutates real messages byte by byte (seeds written to --work).
Any exception, or an input slower than --timeout seconds, stops the run; libFuzzer writes the
input to crash-* / timeout-* in the current folder. Replay one with `--replay FILE`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


class FuzzedChooser:
    """The mutations' choices, read from libFuzzer's input."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider

    def integer(self, low: int, high: int) -> int:
        return int(self.provider.ConsumeIntInRange(low, high))

    def blob(self, max_size: int) -> bytes:
        return bytes(self.provider.ConsumeBytes(self.provider.ConsumeIntInRange(0, max_size)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=300, help="total run time")
    parser.add_argument("--mode", choices=("structured", "raw"), default="structured")
    parser.add_argument("--timeout", type=int, default=15,
                        help="seconds one input may take before it counts as a finding")
    parser.add_argument("--work", type=Path, help="corpus folder kept between runs")
    parser.add_argument("--replay", type=Path, help="run one saved input and show its error")
    args, libfuzzer_args = parser.parse_known_args()
    try:
        import atheris
    except ImportError:
        print("atheris is not installed: pip install -e '.[fuzz]'", file=sys.stderr)
        return 2
    sys.path.insert(0, str(REPO))
    with atheris.instrument_imports(include=["sluice"]):
        from tests.fuzz import mutations
    mutations.seed_messages()
    mutations.classifier()
    mutations.ruleset()

    def structured(data: bytes) -> None:
        chooser = FuzzedChooser(atheris.FuzzedDataProvider(data))
        raw = mutations.hostile_message(chooser)
        envelope = mutations.ENVELOPES[chooser.integer(0, len(mutations.ENVELOPES) - 1)]
        mutations.run_pipeline(raw, envelope)

    def raw_bytes(data: bytes) -> None:
        mutations.run_pipeline(data, mutations.ENVELOPES[len(data) % len(mutations.ENVELOPES)])

    target = structured if args.mode == "structured" else raw_bytes
    if args.replay:
        target(args.replay.read_bytes())
        print("no error")
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="sluice-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.mode == "raw" and not any(work.iterdir()):
        for n, seed in enumerate(mutations.seed_messages()):
            (work / f"seed-{n}").write_bytes(seed)
    print(f"fuzzing {args.mode} for {args.seconds} s, corpus in {work}", flush=True)
    # Structured inputs are short lists of choices: full length from the start.
    lengths = (["-max_len=4096", "-len_control=0"] if args.mode == "structured"
               else ["-max_len=1048576"])
    atheris.Setup([sys.argv[0], str(work), f"-max_total_time={args.seconds}",
                   f"-timeout={args.timeout}", "-rss_limit_mb=4096", *lengths,
                   "-print_final_stats=1", *libfuzzer_args], target)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
