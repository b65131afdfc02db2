"""Nested cross-validation of classifier recipes over several fold seeds (run on demand).

What `sluice train ... --evaluate` prints for fold seed 0 — 5 outer folds split by thread,
the direct-rule ratio of each outer fold's model tuned on inner folds of its training threads
only — repeated for other fold seeds (`training._SEED`), for several recipes, on all labels and
on the first label file alone (the corpus's own labels.csv). One split moves macro-F1 by about
±0.015, so recipes are compared on the mean of seeds (docs/classifier.md, eighth round).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/nested_seeds.py
    OMP_NUM_THREADS=1 .venv/bin/python scripts/nested_seeds.py --recipe lean --seeds 1,2
    OMP_NUM_THREADS=1 .venv/bin/python scripts/nested_seeds.py --recipe lean --tuning 0.025

Recipes: `shipped` (the default model's: labels only), `both` (the `--unlabeled` recipe),
`lean` (`--unlabeled` with quoted_weight=0,quoted_topic_dims=50,topic_words=5000), and any
`--variant KNOB=VALUE,...` of the `--unlabeled` recipe. The unlabeled mail defaults to the
corpus's three folders with the held-out labels set aside, as in the documented commands.
With several BLAS threads the solver's last digits differ; the documented figures were
made with OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from sluice.classifier import training
from sluice.classifier.commands import _examples, _unlabeled
from sluice.classifier.evaluation import Evaluation, Scores, cross_validate

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
DATA = ROOT / "src" / "sluice" / "classifier" / "data"
UNLABELED = [CORPUS / "enron_inboxes", CORPUS / "enron_with_categories",
             CORPUS / "spamassassin_ham"]
#: name -> (reads unlabeled mail, recipe knobs as `sluice train --recipe` takes them)
RECIPES: dict[str, tuple[bool, str]] = {
    "shipped": (False, ""),
    "lean": (True, "quoted_weight=0,quoted_topic_dims=50,topic_words=5000"),
    "both": (True, ""),
}


def figures(scores: Scores, y: np.ndarray) -> dict[str, Any]:
    """Macro-F1, direct misses as a share and a count of the `direct`-labeled messages, and
    F1 per category, of one classifier on messages whose first labels are `y`."""
    direct = int((y == "direct").sum())
    return {
        "macro_f1": scores.macro_f1,
        "direct_miss": scores.direct_miss,
        "direct_missed": round(scores.direct_miss * direct),
        "direct": direct,
        "f1": {label: float(f) for label, f in zip(scores.labels, scores.f1, strict=True)},
    }


def run(data: training.Prepared, recipe: training.Recipe, seed: int) -> dict[str, Any]:
    """One nested cross-validation with fold seed `seed`: figures on all labels and on the
    first label file alone, with the direct rule and taking the most probable category."""
    training._SEED = seed
    try:
        result: Evaluation = cross_validate(data, recipe)
    finally:
        training._SEED = 0
    origins = np.array([e.origin for e in data.examples])
    first = origins == origins[0]
    out = {"seed": seed, "all": figures(result.model, data.y),
           "all_argmax": figures(result.argmax, data.y)}
    if result.model_on_first_source and result.argmax_on_first_source:
        out["first"] = figures(result.model_on_first_source, data.y[first])
        out["first_argmax"] = figures(result.argmax_on_first_source, data.y[first])
    return out


def cell(f: dict[str, Any]) -> str:
    return (f"{f['macro_f1']:.3f} at {f['direct_miss']:.1%} "
            f"({f['direct_missed']} of {f['direct']})")


def mean_cell(runs: list[dict[str, Any]], key: str) -> str:
    f1 = statistics.mean(r[key]["macro_f1"] for r in runs)
    miss = statistics.mean(r[key]["direct_miss"] for r in runs)
    missed = sum(r[key]["direct_missed"] for r in runs)
    total = sum(r[key]["direct"] for r in runs)
    return f"{f1:.3f} at {miss:.1%} ({missed} of {total})"


def report(name: str, runs: list[dict[str, Any]]) -> str:
    """A Markdown table of one recipe's runs, one row per seed and the mean."""
    keys = [k for k in ("all", "all_argmax", "first", "first_argmax") if k in runs[0]]
    heads = {"all": "all labels, with the rule", "all_argmax": "all labels, most probable",
             "first": "first label file, with the rule",
             "first_argmax": "first label file, most probable"}
    categories = list(runs[0]["first"]["f1"]) if "first" in runs[0] else []
    lines = [f"### {name}", "",
             "| fold seed | " + " | ".join(heads[k] for k in keys)
             + (" | F1 per category, first label file, with the rule (" + ", ".join(categories)
                + ")" if categories else "") + " |",
             "|---" * (len(keys) + 1 + bool(categories)) + "|"]
    for r in runs:
        per = (" | " + " / ".join(f"{r['first']['f1'][c]:.2f}" for c in categories)
               if categories else "")
        lines.append(f"| {r['seed']} | " + " | ".join(cell(r[k]) for k in keys) + per + " |")
    if len(runs) > 1:
        per = (" | " + " / ".join(
            f"{statistics.mean(r['first']['f1'][c] for r in runs):.2f}" for c in categories)
            if categories else "")
        lines.append("| mean | " + " | ".join(mean_cell(runs, k) for k in keys) + per + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, action="append",
                        help="labels (default: the corpus labels, then the extra labels)")
    parser.add_argument("--unlabeled", type=Path, action="append",
                        help="mail without labels (default: the corpus's three folders)")
    parser.add_argument("--set-aside", type=Path, action="append",
                        help="labels kept out (default: the held-out labels)")
    parser.add_argument("--recipe", action="append", choices=sorted(RECIPES),
                        help="named recipe (repeatable; default: shipped, lean, both)")
    parser.add_argument("--variant", action="append", default=[], metavar="KNOB=VALUE,...",
                        help="the --unlabeled recipe with these knobs changed (repeatable)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--tuning", type=float, default=training.DIRECT_MISS_TUNING,
                        help="most direct misses the inner folds tune the ratio to")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    chosen = [(name, *RECIPES[name]) for name in args.recipe or
              ([] if args.variant else ["shipped", "lean", "both"])]
    chosen += [(text, True, text) for text in args.variant]
    training.DIRECT_MISS_TUNING = args.tuning
    labeled = training.prepare(
        _examples(args.data or [CORPUS / "labels.csv", DATA / "extra_labels.csv"]),
        recipe=training.Recipe(sender_history=False))
    unlabeled_rows: list[Any] = []
    unlabeled_raws: list[bytes] = []
    others: list[tuple[bytes, Any]] = []
    if any(unlabeled for _, unlabeled, _ in chosen):
        aside = training.parsed(
            e.raw for e in _examples(args.set_aside or [DATA / "heldout_labels.csv"]))
        others = [*aside, *training.parsed(_unlabeled(args.unlabeled or UNLABELED))]
        unlabeled_rows, unlabeled_raws = training.unlabeled_rows(
            labeled.examples, labeled.mails, labeled.rows, others[len(aside):], aside)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"{len(labeled.rows)} labeled messages, {len(unlabeled_rows)} unlabeled; inner folds "
          f"tuned to {args.tuning:.1%} direct misses; fold seeds {args.seeds}\n", flush=True)
    everything: dict[str, list[dict[str, Any]]] = {}
    for name, unlabeled, knobs in chosen:
        recipe = training.changed_recipe(knobs)
        data = labeled
        if recipe.sender_history:
            data = training.with_history(labeled, others if unlabeled else [])
        if unlabeled:
            topics, quoted = training.fit_directions(unlabeled_rows, unlabeled_raws, recipe)
            data = dataclasses.replace(data, topics=topics, quoted_topics=quoted)
        runs = []
        for seed in seeds:
            runs.append(run(data, recipe, seed))
            print(f"{name}, seed {seed}: {cell(runs[-1]['all'])}", flush=True)
        everything[name] = runs
        print("\n" + report(name + (f" ({knobs})" if knobs and knobs != name else ""), runs)
              + "\n", flush=True)
        if args.json:
            args.json.write_text(json.dumps(everything, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
