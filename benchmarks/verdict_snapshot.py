"""Snapshot the classifier's answers on corpus mail, to check that a speed change alters none.

Run on demand (this is not a test), before and after a change to the classifier's code:

    .venv/bin/python benchmarks/verdict_snapshot.py save BEFORE.json     # before the change
    .venv/bin/python benchmarks/verdict_snapshot.py compare BEFORE.json  # after it

It classifies `--count` corpus messages chosen at random (fixed seed) plus the 60 largest
files, one at a time and with `classify_many` (with and without reasons), and keeps for each:
category, confidence, reasons, the raw probabilities, the row's header facts, digests of its
texts and the feature vector. `compare` requires all of them to be exactly equal (floats
bit for bit) and exits 1 on any difference. Keep the JSON outside the checkout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
_KEYS = ("category", "confidence", "reasons", "proba", "headers", "subject", "body", "quoted",
         "vector")


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def snapshot(count: int) -> dict[str, dict[str, Any]]:
    from sluice.classifier.features import to_row
    from sluice.classifier.model import Classifier
    from sluice.core.parse import parse

    files = sorted(str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*")
                   if p.is_file() and p.suffix not in (".md", ".csv"))
    chosen = random.Random(7).sample(files, min(count, len(files)))
    largest = sorted(files, key=lambda f: (-(CORPUS / f).stat().st_size, f))[:60]
    chosen += [f for f in largest if f not in chosen]
    classifier = Classifier.load_default()
    scorer = classifier._scorer
    out: dict[str, dict[str, Any]] = {}
    mails = []
    for name in chosen:
        mail = parse((CORPUS / name).read_bytes())
        mails.append(mail)
        verdict = classifier.classify(mail)
        row = to_row(mail)
        indices, values = scorer.vector(row)
        order = np.lexsort((values, indices))
        out[name] = {
            "category": verdict.category, "confidence": verdict.confidence,
            "reasons": list(verdict.reasons),
            "proba": [float(p) for p in scorer.proba(row)], "headers": row.headers,
            "subject": row.subject, "body": _digest(row.body), "quoted": _digest(row.quoted),
            "vector": [[int(i), float(v)] for i, v in zip(indices[order], values[order],
                                                         strict=True)],
        }
    many = classifier.classify_many(mails)
    quick = classifier.classify_many(mails, explain=False)
    for name, full, short in zip(chosen, many, quick, strict=True):
        one = out[name]
        if (full.category, full.confidence, list(full.reasons)) != (
                one["category"], one["confidence"], one["reasons"]):
            raise SystemExit(f"{name}: classify_many differs from classify")
        if (short.category, short.confidence) != (full.category, full.confidence):
            raise SystemExit(f"{name}: classify_many(explain=False) differs")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=("save", "compare"))
    ap.add_argument("file", type=Path)
    ap.add_argument("--count", type=int, default=2000, help="corpus messages at random")
    args = ap.parse_args(argv)
    now = snapshot(args.count)
    if args.action == "save":
        args.file.write_text(json.dumps(now))
        print(f"saved {len(now)} messages to {args.file}")
        return 0
    before: dict[str, dict[str, Any]] = json.loads(args.file.read_text())
    differing = [name for name, old in before.items()
                 if name not in now or any(now[name][k] != old[k] for k in _KEYS)]
    for name in differing[:10]:
        keys = [k for k in _KEYS if name in now and now[name][k] != before[name][k]]
        print(f"differs: {name} {keys or 'missing'}")
    print(f"compared {len(before)} messages: {len(differing)} differ")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
