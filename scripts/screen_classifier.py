"""Screen a classifier recipe the way docs/classifier.md judges changes (run on demand).

Best lenient macro-F1 among the direct-rule ratios that keep direct mail called divertible
at or under 3%, on out-of-fold predictions (5 folds by thread, no inner tuning), for each
fold seed, and the mean. One number per seed is noisy (±0.015), so a change is judged on the
mean of three seeds and then through the nested `sluice train ... --evaluate`.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/screen_classifier.py
    OMP_NUM_THREADS=1 .venv/bin/python scripts/screen_classifier.py --topic-weight 0.75 \\
        --unlabeled ../shared/corpus/enron_inboxes --unlabeled ../shared/corpus/spamassassin_ham \\
        --unlabeled ../shared/corpus/enron_with_categories

`--variant KNOB=VALUE,...` (repeatable) screens several recipes in one run, each the
options' recipe with those `Recipe` knobs changed; the mail is parsed once for all of them.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from pathlib import Path

import numpy as np

from sluice.classifier import training
from sluice.classifier.commands import _examples, _unlabeled

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
DATA = ROOT / "src" / "sluice" / "classifier" / "data"
#: The ratios tried: steps of 0.02 down to 0.2, then of 0.005 down to 0.025.
RATIOS = np.concatenate([np.arange(1.0, 0.2, -0.02), np.arange(0.2, 0.0249, -0.005)])


def best_at_target(proba: np.ndarray, classes: tuple[str, ...], y: np.ndarray,
                   second: np.ndarray) -> tuple[float, float, float]:
    """(macro-F1, ratio, direct misses) of the best ratio within the target, or NaNs."""
    best = (float("nan"), float("nan"), float("nan"))
    for ratio in RATIOS:
        predicted = training.choose_with_ratio(proba, classes, float(ratio))
        miss = training.direct_miss_rate(y, second, predicted)
        if miss <= training.DIRECT_MISS_TARGET:
            f1 = training.macro_f1(training.lenient_truth(y, second, predicted), predicted)
            if not f1 <= best[0]:
                best = (f1, float(ratio), miss)
    return best


def screen(data: training.Prepared, recipe: training.Recipe, seeds: list[int]) -> list[float]:
    """Best macro-F1 at the target for each fold seed, printed as it comes."""
    everything = np.arange(len(data.rows))
    results = []
    for seed in seeds:
        training._SEED = seed
        proba, classes = training.out_of_fold_proba(data, everything, recipe, 5)
        f1, ratio, miss = best_at_target(proba, classes, data.y, data.second)
        plain = training.choose_with_ratio(proba, classes, 1.0)
        plain_f1 = training.macro_f1(training.lenient_truth(data.y, data.second, plain), plain)
        plain_miss = training.direct_miss_rate(data.y, data.second, plain)
        print(f"seed {seed}: best {f1:.3f} at ratio {ratio:.3f} ({miss:.1%} direct misses); "
              f"most probable category {plain_f1:.3f} ({plain_miss:.1%})", flush=True)
        results.append(f1)
    training._SEED = 0
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, action="append",
                        help="labels (default: the corpus labels and the extra labels)")
    parser.add_argument("--unlabeled", type=Path, action="append", default=[])
    parser.add_argument("--set-aside", type=Path, action="append",
                        help="labels kept out (default: the held-out labels)")
    parser.add_argument("--topic-dims", type=int, default=training.Recipe.topic_dims)
    parser.add_argument("--topic-weight", type=float, default=training.Recipe.topic_weight)
    parser.add_argument("--quoted-topic-weight", type=float,
                        default=training.Recipe.quoted_topic_weight)
    parser.add_argument("--quoted-topic-dims", type=int,
                        default=training.Recipe.quoted_topic_dims)
    parser.add_argument("--topic-vocabulary", type=int,
                        default=training.Recipe.topic_vocabulary,
                        help="most frequent words the directions are fitted over")
    parser.add_argument("--topic-words", type=int, default=training.Recipe.topic_words,
                        help="words kept per set of directions after fitting (0: all)")
    parser.add_argument("--variant", action="append", default=[], metavar="KNOB=VALUE,...",
                        help="screen this change of the recipe too (repeatable)")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    data_paths = args.data or [CORPUS / "labels.csv", DATA / "extra_labels.csv"]
    aside = args.set_aside or [DATA / "heldout_labels.csv"]
    base = dataclasses.replace(training.Recipe(), topic_dims=args.topic_dims,
                               topic_weight=args.topic_weight,
                               quoted_topic_weight=args.quoted_topic_weight,
                               quoted_topic_dims=args.quoted_topic_dims,
                               topic_vocabulary=args.topic_vocabulary,
                               topic_words=args.topic_words)
    recipes = [(text, training.changed_recipe(text, base)) for text in args.variant] or [("", base)]
    labeled = training.prepare(_examples(data_paths), recipe=training.Recipe(sender_history=False))
    set_aside = training.parsed(e.raw for e in _examples(aside))
    others = training.parsed(_unlabeled(args.unlabeled))
    unlabeled_rows, unlabeled_raws = training.unlabeled_rows(
        labeled.examples, labeled.mails, labeled.rows, others, set_aside)
    seeds = [int(s) for s in args.seeds.split(",")]
    for text, recipe in recipes:
        if text:
            print(f"variant {text}", flush=True)
        data = labeled
        if recipe.sender_history:
            data = training.with_history(labeled, [*set_aside, *others])
        if unlabeled_rows:
            topics, quoted = training.fit_directions(unlabeled_rows, unlabeled_raws, recipe)
            data = dataclasses.replace(data, topics=topics, quoted_topics=quoted)
        results = screen(data, recipe, seeds)
        print(f"mean {statistics.mean(results):.4f} ({' / '.join(f'{r:.3f}' for r in results)}); "
              f"unlabeled messages: {data.topics.messages if data.topics else 0}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
