"""`sluice classify`, `sluice train` and `sluice evaluate`: the classifier on the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sluice.classifier.dataset import Example
    from sluice.classifier.evaluation import Evaluation, Scores
    from sluice.classifier.model import Classifier
    from sluice.classifier.training import Recipe
    from sluice.core.settings import Settings

# scikit-learn and numpy load in the run_* functions, so `sluice --help` stays fast.

_DEFAULT_OUT = Path("data") / "model.json"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    classify = subparsers.add_parser(
        "classify", help="say what kind of mail each message is",
        description="Classify messages: a file is one message (an mbox if it starts with "
        "'From '), a folder is a maildir or a tree of message files.",
    )
    classify.add_argument("paths", nargs="+", metavar="FILE|DIR")
    classify.add_argument("--json", action="store_true", help="one JSON object per line")
    classify.add_argument("--model", type=Path, help="model file (default: the shipped model)")
    classify.set_defaults(func=run_classify)

    data_help = ("labels CSV (file,category[,second]), a folder with one, or a folder with one "
                 "sub-folder per category; repeat to combine several (e.g. the corpus labels "
                 "and extra labels)")
    unlabeled_help = ("mail without labels (a folder, maildir, mbox or file; repeatable): "
                      "word-use directions are learned from it first (labeled messages and "
                      "copies of them left out); files that do not start with a header line "
                      "are skipped")
    recipe_help = ("change knobs of the training recipe (training.Recipe), e.g. "
                   "'quoted_topic_dims=50,topic_words=10000' (docs/classifier.md)")
    aside_help = ("labeled mail kept for a later check (same shapes as --data; repeatable): "
                  "neither trained on nor read as --unlabeled mail")
    training = subparsers.add_parser(
        "train", help="train a model on labeled mail and stored corrections",
        description="Train a model; stored corrections are learned too (--database-url, or "
        "the default SQLite database when it exists).",
    )
    training.add_argument("--data", type=Path, required=True, action="append", help=data_help)
    training.add_argument("--out", type=Path, default=_DEFAULT_OUT,
                          help="model file to write: a JSON model (fast to load, numpy only), "
                          "or the scikit-learn pipeline when the name ends in .skops")
    training.add_argument("--config", type=Path, help="Sluice config file (TOML)")
    training.add_argument("--database-url", help="database holding corrections")
    training.add_argument("--no-corrections", action="store_true",
                          help="ignore stored corrections")
    training.add_argument("--unlabeled", type=Path, action="append", default=[],
                          metavar="PATH", help=unlabeled_help)
    training.add_argument("--set-aside", type=Path, action="append", default=[],
                          metavar="LABELS", help=aside_help)
    training.add_argument("--recipe", default="", metavar="KNOB=VALUE,...", help=recipe_help)
    training.add_argument("--evaluate", action="store_true",
                          help="also cross-validate by thread and store the figures beside "
                          "the model (MODEL.json)")
    training.set_defaults(func=run_train)

    evaluate = subparsers.add_parser(
        "evaluate", help="measure a model against baselines on labeled mail",
        description="Without --model: train and score by cross-validation split by thread. "
        "With --model: score that model on --data, which it must not have been trained on.",
    )
    evaluate.add_argument("--data", type=Path, required=True, action="append", help=data_help)
    evaluate.add_argument("--model", type=Path, help="score this model file instead")
    evaluate.add_argument("--unlabeled", type=Path, action="append", default=[],
                          metavar="PATH", help=unlabeled_help)
    evaluate.add_argument("--set-aside", type=Path, action="append", default=[],
                          metavar="LABELS", help=aside_help)
    evaluate.add_argument("--recipe", default="", metavar="KNOB=VALUE,...", help=recipe_help)
    evaluate.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    evaluate.set_defaults(func=run_evaluate)


def run_classify(args: argparse.Namespace) -> int:
    from sluice.classifier.features import to_row
    from sluice.classifier.history import facts_in_date_order
    from sluice.classifier.readers import read_paths
    from sluice.core.parse import normalize_line_endings, parse

    classifier = _load(args.model)
    failed = 0
    try:
        # Each message is classified with its sender's history among the messages given,
        # counted in Date order as training counts it; so all are read first.
        sources = [(source.name, parse(normalize_line_endings(source.raw)))
                   for source in read_paths(args.paths)]
        histories = facts_in_date_order([mail for _, mail in sources])
        for (name, mail), history in zip(sources, histories, strict=True):
            verdict = classifier.verdict(to_row(mail, history))
            if args.json:
                print(json.dumps({
                    "file": name,
                    "message_id": mail.message_id,
                    "subject": mail.subject,
                    "category": verdict.category,
                    "confidence": verdict.confidence,
                    "reasons": list(verdict.reasons),
                    "model_version": verdict.model_version,
                }, ensure_ascii=False))
            else:
                reasons = "; ".join(verdict.reasons)
                print(f"{name}\t{verdict.category}\t{verdict.confidence:.2f}\t{reasons}")
    except OSError as exc:
        print(f"sluice classify: {exc}", file=sys.stderr)
        failed = 1
    return failed


def _load(path: Path | None) -> Classifier:
    from sluice.classifier.model import DEFAULT_MODEL, Classifier
    from sluice.core.errors import ConfigError

    model = path or DEFAULT_MODEL
    if not model.is_file():
        raise ConfigError(f"no model file at {model}; train one with `sluice train`")
    return Classifier.load(model)


def _settings(args: argparse.Namespace) -> Settings:
    from sluice.core.settings import load_settings

    return load_settings(args.config, database_url=args.database_url)


def _corrections(args: argparse.Namespace) -> list[Example]:
    """Stored corrections, when a database was named or the default one exists."""
    if args.no_corrections:
        return []
    settings = _settings(args)
    default_db = settings.data_dir / "sluice.db"
    if not settings.database_url and not default_db.is_file():
        return []
    from sluice.classifier.dataset import load_corrections
    from sluice.core.db import init_schema, make_engine

    engine = make_engine(settings)
    try:
        init_schema(engine)
        return load_corrections(engine)
    finally:
        engine.dispose()


def run_train(args: argparse.Namespace) -> int:
    from sluice.classifier import persist
    from sluice.classifier.evaluation import cross_validate, format_evaluation
    from sluice.classifier.training import prepare, train

    recipe = _recipe(args.recipe)
    examples = _examples(args.data)
    corrections = _corrections(args)
    data = prepare(examples + corrections, _unlabeled(args.unlabeled),
                   set_aside=[e.raw for e in _examples(args.set_aside)], recipe=recipe)
    print(f"training on {len(examples)} labeled messages and {len(corrections)} corrections",
          file=sys.stderr)
    figures: dict[str, Any] = {}
    if args.evaluate:
        result = cross_validate(data, recipe)
        print(format_evaluation(result))
        figures = _evaluation_json(result)
    bundle = train(data, recipe=recipe)
    bundle.metadata["data"] = [str(d) for d in args.data]
    if args.unlabeled:
        bundle.metadata["unlabeled_data"] = [str(d) for d in args.unlabeled]
    if figures:
        bundle.metadata["evaluation"] = figures
    persist.save(bundle, args.out)
    if args.out.suffix != ".json":
        # A JSON model carries these facts inside; a skops file gets them beside it.
        summary = {"version": bundle.version, "direct_ratio": bundle.direct_ratio,
                   **bundle.metadata}
        args.out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out} (version {bundle.version})", file=sys.stderr)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    import dataclasses

    from sluice.classifier.evaluation import cross_validate, evaluate_model, format_evaluation
    from sluice.classifier.training import prepare

    recipe = _recipe(args.recipe)
    if args.model:
        # A given model has its directions: the unlabeled mail only feeds the sender history.
        recipe = dataclasses.replace(recipe, topic_dims=0)
    data = prepare(_examples(args.data), _unlabeled(args.unlabeled),
                   set_aside=[e.raw for e in _examples(args.set_aside)], recipe=recipe)
    if args.model:
        result = evaluate_model(_load(args.model), data)
    else:
        result = cross_validate(data, recipe, n_folds=args.folds)
    print(format_evaluation(result), end="")
    return 0


def _recipe(changes: str) -> Recipe:
    from sluice.classifier.training import changed_recipe
    from sluice.core.errors import ConfigError

    try:
        return changed_recipe(changes)
    except ValueError as exc:
        raise ConfigError(f"--recipe: {exc}") from exc


#: A message file starts with a header line ("Name: value") or an mbox "From " line; label
#: files, READMEs and keys beside the mail do not.
_HEADER_LINE = rb"(?:From |[!-9;-~]+:)"


def _unlabeled(paths: list[Path]) -> list[bytes]:
    import re

    from sluice.classifier.readers import read_paths

    header = re.compile(_HEADER_LINE)
    return [source.raw for source in read_paths(str(p) for p in paths)
            if header.match(source.raw)]


def _examples(paths: list[Path]) -> list[Example]:
    from sluice.classifier.dataset import load_examples

    return [example for path in paths for example in load_examples(path)]


def _scores_json(scores: Scores) -> dict[str, Any]:
    return {
        "macro_f1": round(scores.macro_f1, 4),
        "strict_macro_f1": round(scores.strict_macro_f1, 4),
        "accuracy": round(scores.accuracy, 4),
        "direct_called_divertible": round(scores.direct_miss, 4),
        "per_category": {
            label: {
                "precision": round(float(scores.precision[i]), 4),
                "recall": round(float(scores.recall[i]), 4),
                "f1": round(float(scores.f1[i]), 4),
                "support": int(scores.support[i]),
            }
            for i, label in enumerate(scores.labels)
        },
    }


def _evaluation_json(result: Evaluation) -> dict[str, Any]:
    return {
        "method": f"{result.folds}-fold cross-validation split by thread",
        "messages": result.messages,
        "threads": result.threads,
        "expected_calibration_error": round(result.ece, 4),
        "log_loss": round(result.log_loss, 4),
        "model": _scores_json(result.model),
        "model_without_direct_rule": _scores_json(result.argmax),
        "majority_class": _scores_json(result.majority),
        "header_rules": _scores_json(result.rules),
        **({"model_on_first_source": {"source": result.first_source,
                                      **_scores_json(result.model_on_first_source)}}
           if result.model_on_first_source is not None else {}),
    }
