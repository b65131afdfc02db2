"""Shared fixtures: the real labeled corpus, parsed once, and one held-out thread split."""

from __future__ import annotations

import csv
import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from sluice.classifier.dataset import Example, load_examples
from sluice.classifier.features import to_row
from sluice.classifier.model import Classifier
from sluice.classifier.topics import TopicSpace, fit_topics, quoted_text
from sluice.classifier.training import Prepared, Recipe, folds, prepare, train
from sluice.core.parse import parse

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
LABELS = CORPUS / "labels.csv"
#: Labels added by this project by the same guideline (see docs/classifier.md).
EXTRA_LABELS = (Path(__file__).resolve().parents[2] / "src" / "sluice" / "classifier" / "data"
                / "extra_labels.csv")
#: Labels kept out of training: a held-out set for the shipped model (docs/classifier.md).
HELDOUT_LABELS = EXTRA_LABELS.with_name("heldout_labels.csv")
#: Quick recipe for tests: one fit, no inner cross-validation for the direct rule.
QUICK = Recipe(tune_direct_rule=False)


@dataclass
class Split:
    """A model trained on some threads and the messages of the other threads."""

    classifier: Classifier
    train: np.ndarray
    test: np.ndarray


@pytest.fixture(scope="session")
def examples() -> list[Example]:
    assert LABELS.is_file(), f"the labeled corpus is expected at {CORPUS}"
    return load_examples(LABELS)


@pytest.fixture(scope="session")
def prepared(examples: list[Example]) -> Prepared:
    return prepare(examples)


@pytest.fixture(scope="session")
def split(prepared: Prepared) -> Split:
    train_index, test_index = folds(prepared, np.arange(len(prepared.rows)), 4)[0]
    return Split(Classifier(train(prepared, train_index, QUICK, version="test")),
                 train_index, test_index)


@pytest.fixture(scope="session")
def default_classifier() -> Classifier:
    return Classifier.load_default()


def labeled_sample(per_category: int, seed: int = 0) -> list[tuple[str, str]]:
    """A few (path, category) pairs per category from the corpus labels, chosen at random."""
    by_category: dict[str, list[str]] = {}
    with LABELS.open(newline="") as fh:
        for row in csv.DictReader(fh):
            by_category.setdefault(row["category"], []).append(row["path"])
    rng = random.Random(seed)
    return [
        (path, category)
        for category, paths in sorted(by_category.items())
        for path in rng.sample(paths, min(per_category, len(paths)))
    ]


def category_folders(root: Path, per_category: int, seed: int = 0) -> Path:
    """Copy a sample of the corpus into one sub-folder per category (a `--data` shape)."""
    for path, category in labeled_sample(per_category, seed):
        target = root / category / path.replace("/", "_")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((CORPUS / path).read_bytes())
    return root


#: Unlabeled corpus mail the tests fit word-use directions on (a few hundred: about a second).
UNLABELED = 400
#: Directions fitted for the tests (the shipped recipe's are 100).
TEST_DIRECTIONS = 12


def unlabeled_raws(examples: list[Example], n: int = UNLABELED) -> list[bytes]:
    """Inbox messages that are not among `examples` (every seventh file, in order)."""
    labeled = {e.raw for e in examples}
    files = sorted(p for p in (CORPUS / "enron_inboxes").rglob("*") if p.is_file())
    raws = (p.read_bytes() for p in files[::7])
    return [raw for raw in raws if raw not in labeled][:n]


@pytest.fixture(scope="session")
def spaces(examples: list[Example]) -> dict[str, TopicSpace]:
    """Directions of the subject and new text ("topic") and of the quoted text ("quoted")."""
    raws = unlabeled_raws(examples)
    rows = [to_row(parse(raw)) for raw in raws]
    return {"topic": fit_topics(rows, raws, TEST_DIRECTIONS),
            "quoted": fit_topics(rows, raws, TEST_DIRECTIONS, text=quoted_text)}


@pytest.fixture(scope="session")
def with_topics(prepared: Prepared, spaces: dict[str, TopicSpace]) -> Classifier:
    """A model with word-use directions, trained on every other labeled message."""
    data = dataclasses.replace(prepared, topics=spaces["topic"], quoted_topics=spaces["quoted"])
    index = np.arange(0, len(data.rows), 2)
    return Classifier(train(data, index, QUICK, version="test"))
