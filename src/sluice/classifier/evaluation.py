"""evaluate: how good is the model on threads it never saw, next to two baselines.

Every figure is measured in the same run on the same held-out messages: the model, the
majority class of the training side, and the header-rules classifier (`rules.py`). A
message labeled with a second plausible category counts as right when either is predicted.
Splits keep whole threads on one side (`training.thread_groups`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from sluice.classifier.model import Classifier, is_invitation
from sluice.classifier.rules import rule_category
from sluice.classifier.training import (
    Prepared,
    Recipe,
    direct_miss_rate,
    folds,
    lenient_truth,
    macro_f1,
    train,
)
from sluice.core.verdict import CATEGORIES

_CALIBRATION_BINS = 10


@dataclass(frozen=True)
class Scores:
    """Per-category and overall figures for one classifier on one set of messages."""

    name: str
    labels: tuple[str, ...]
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    macro_f1: float
    strict_macro_f1: float
    accuracy: float
    direct_miss: float
    confusion: np.ndarray


@dataclass(frozen=True)
class Evaluation:
    model: Scores
    #: The same model taking the most probable category, without the direct rule.
    argmax: Scores
    majority: Scores
    rules: Scores
    messages: int
    threads: int
    folds: int
    #: Expected calibration error of the top probability, and mean log loss of the label.
    ece: float
    log_loss: float
    #: The model scored only on the messages of the first labels source (e.g. the corpus's
    #: own labels.csv when extra labels were added), with that source's name; else None.
    model_on_first_source: Scores | None = None
    first_source: str = ""
    #: The same subset taking the most probable category (for reports comparing recipes on
    #: the first source alone, e.g. scripts/nested_seeds.py).
    argmax_on_first_source: Scores | None = None


def score(name: str, y: np.ndarray, second: np.ndarray, predicted: np.ndarray) -> Scores:
    truth = lenient_truth(y, second, predicted)
    labels = tuple(c for c in CATEGORIES if c in set(truth) | set(predicted))
    p, r, f, s = precision_recall_fscore_support(
        truth, predicted, labels=list(labels), zero_division=0
    )
    return Scores(
        name=name, labels=labels, precision=p, recall=r, f1=f, support=s,
        macro_f1=macro_f1(truth, predicted),
        strict_macro_f1=macro_f1(y, predicted),
        accuracy=float(np.mean(truth == predicted)),
        direct_miss=direct_miss_rate(y, second, predicted),
        confusion=confusion_matrix(truth, predicted, labels=list(labels)),
    )


def calibration(confidence: np.ndarray, correct: np.ndarray) -> float:
    """Expected calibration error: |accuracy - confidence| averaged over confidence bins."""
    edges = np.linspace(0.0, 1.0, _CALIBRATION_BINS + 1)
    bins = np.clip(np.digitize(confidence, edges) - 1, 0, _CALIBRATION_BINS - 1)
    total = 0.0
    for b in range(_CALIBRATION_BINS):
        mask = bins == b
        if mask.any():
            total += mask.sum() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total / len(confidence))


def cross_validate(data: Prepared, recipe: Recipe | None = None, n_folds: int = 5) -> Evaluation:
    """Train on all threads but one fold's, score that fold; every message is scored once."""
    recipe = recipe or Recipe()
    everything = np.arange(len(data.rows))
    predicted = np.empty(len(everything), dtype=object)
    argmax = np.empty(len(everything), dtype=object)
    majority = np.empty(len(everything), dtype=object)
    confidence = np.zeros(len(everything))
    own_label_proba = np.zeros(len(everything))
    splits = folds(data, everything, n_folds)
    for train_index, test_index in splits:
        classifier = Classifier(train(data, train_index, recipe, version="evaluation"))
        proba = classifier.predict_proba([data.rows[i] for i in test_index])
        for row, message in enumerate(test_index):
            predicted[message] = classifier.classes[classifier.choose(
                proba[row], invitation=is_invitation(data.rows[message]))]
            argmax[message] = classifier.classes[int(np.argmax(proba[row]))]
            confidence[message] = proba[row].max()
            label = data.y[message]
            own = classifier.classes.index(label) if label in classifier.classes else -1
            own_label_proba[message] = proba[row][own] if own >= 0 else 0.0
        majority[test_index] = Counter(data.y[train_index].tolist()).most_common(1)[0][0]
    predicted_arr, argmax_arr = predicted.astype(str), argmax.astype(str)
    rules = np.array([rule_category(m) for m in data.mails])
    correct = lenient_truth(data.y, data.second, argmax_arr) == argmax_arr
    origins = [e.origin for e in data.examples]
    first = np.array([o == origins[0] for o in origins])
    subset = subset_argmax = None
    if not first.all():
        subset = score(f"model, on {origins[0]} only", data.y[first], data.second[first],
                       predicted_arr[first])
        subset_argmax = score(f"model without the direct rule, on {origins[0]} only",
                              data.y[first], data.second[first], argmax_arr[first])
    return Evaluation(
        model=score("model", data.y, data.second, predicted_arr),
        argmax=score("model without the direct rule", data.y, data.second, argmax_arr),
        majority=score("majority class", data.y, data.second, majority.astype(str)),
        rules=score("header rules", data.y, data.second, rules),
        messages=len(everything),
        threads=len(set(data.groups.tolist())),
        folds=len(splits),
        ece=calibration(confidence, correct.astype(float)),
        log_loss=float(-np.mean(np.log(np.clip(own_label_proba, 1e-12, 1.0)))),
        model_on_first_source=subset,
        first_source=origins[0] if subset else "",
        argmax_on_first_source=subset_argmax,
    )


def evaluate_model(classifier: Classifier, data: Prepared) -> Evaluation:
    """Score a given model on data it must not have been trained on (the caller's promise)."""
    proba = classifier.predict_proba(data.rows)
    predicted = np.array([classifier.classes[classifier.choose(p, invitation=is_invitation(r))]
                          for p, r in zip(proba, data.rows, strict=True)])
    argmax = np.array(classifier.classes)[proba.argmax(axis=1)]
    correct = lenient_truth(data.y, data.second, argmax) == argmax
    own = np.array([
        p[classifier.classes.index(label)] if label in classifier.classes else 0.0
        for p, label in zip(proba, data.y, strict=True)
    ])
    majority = Counter(data.y.tolist()).most_common(1)[0][0]
    return Evaluation(
        model=score("model", data.y, data.second, predicted),
        argmax=score("model without the direct rule", data.y, data.second, argmax),
        majority=score("majority class", data.y, data.second, np.full(len(data.y), majority)),
        rules=score("header rules", data.y, data.second,
                    np.array([rule_category(m) for m in data.mails])),
        messages=len(data.rows),
        threads=len(set(data.groups.tolist())),
        folds=0,
        ece=calibration(proba.max(axis=1), correct.astype(float)),
        log_loss=float(-np.mean(np.log(np.clip(own, 1e-12, 1.0)))),
    )


def format_scores(scores: Scores) -> str:
    width = max(len(label) for label in scores.labels) + 2
    lines = [
        f"== {scores.name}: macro-F1 {scores.macro_f1:.3f} (strict {scores.strict_macro_f1:.3f}),"
        f" accuracy {scores.accuracy:.3f}, direct called divertible {scores.direct_miss:.1%}",
        f"{'category':<{width}}{'precision':>10}{'recall':>10}{'F1':>10}{'support':>10}",
    ]
    for i, label in enumerate(scores.labels):
        lines.append(
            f"{label:<{width}}{scores.precision[i]:>10.3f}{scores.recall[i]:>10.3f}"
            f"{scores.f1[i]:>10.3f}{scores.support[i]:>10d}"
        )
    lines.append("confusion matrix (rows: label, columns: predicted)")
    short = [label[:5] for label in scores.labels]
    lines.append(" " * width + "".join(f"{s:>7}" for s in short))
    for i, label in enumerate(scores.labels):
        lines.append(f"{label:<{width}}" + "".join(f"{n:>7d}" for n in scores.confusion[i]))
    return "\n".join(lines)


def format_evaluation(result: Evaluation) -> str:
    how = (f"{result.folds}-fold cross-validation split by thread" if result.folds
           else "the given model on the given data")
    header = (f"{result.messages} messages in {result.threads} threads; {how}; "
              "a second plausible label counts as right.\n"
              f"model calibration: expected calibration error {result.ece:.3f}, "
              f"log loss {result.log_loss:.3f}")
    plain = result.argmax
    header += (f"\nwithout the direct rule the model scores macro-F1 {plain.macro_f1:.3f} "
               f"(strict {plain.strict_macro_f1:.3f}) and calls "
               f"{plain.direct_miss:.1%} of direct mail divertible")
    shown = [result.model, result.majority, result.rules]
    if result.model_on_first_source is not None:
        shown.append(result.model_on_first_source)
    blocks = [header] + [format_scores(s) for s in shown]
    return "\n\n".join(blocks) + "\n"
