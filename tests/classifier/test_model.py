"""The shipped model: loads safely, answers with reasons, fast, same answer from any thread."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from sluice.classifier import persist
from sluice.classifier.features import to_matrix
from sluice.classifier.model import Classifier
from sluice.classifier.reasons import describe
from sluice.classifier.training import Prepared, Recipe, _version, choose_with_ratio
from sluice.core.verdict import CATEGORIES, Verdict
from tests.classifier.conftest import Split


def test_default_model_gives_a_full_verdict(
    default_classifier: Classifier, prepared: Prepared
) -> None:
    verdict = default_classifier.classify(prepared.mails[0])
    assert isinstance(verdict, Verdict)
    assert verdict.category in CATEGORIES
    assert 0.0 < verdict.confidence <= 1.0
    assert verdict.reasons
    assert verdict.model_version == default_classifier.version != ""


def test_reasons_name_features_present_in_the_message(prepared: Prepared, split: Split) -> None:
    classifier = split.classifier
    for i in split.test[::10]:
        row = prepared.rows[i]
        verdict = classifier.verdict(row)
        assert verdict.reasons, prepared.examples[i].name
        scorer = classifier._scorer
        present, _ = scorer.vector(row)
        possible = {describe(*scorer.feature(int(j)), row) for j in present}
        assert set(verdict.reasons) <= possible
        for reason in verdict.reasons:
            if "“" in reason:  # a word reason: the word is in the message
                word = reason.split("“")[1].rstrip("”")
                text = " ".join((row.subject, row.body, row.quoted)).lower()
                assert all(part in text for part in word.split()), (reason, prepared.examples[i])


def test_fast_scoring_matches_the_sklearn_pipeline(prepared: Prepared, split: Split) -> None:
    pipeline = split.classifier.bundle.pipeline
    assert pipeline is not None
    rows = prepared.rows[::7]
    expected = pipeline.predict_proba(to_matrix(rows))
    fast = split.classifier.predict_proba(rows)
    np.testing.assert_allclose(fast, expected, rtol=1e-6, atol=1e-9)


def test_json_model_gives_the_same_answers(
    tmp_path: Path, prepared: Prepared, split: Split
) -> None:
    path = tmp_path / "model.json"
    persist.save(split.classifier.bundle, path)
    loaded = Classifier.load(path)
    assert loaded.bundle.pipeline is None
    rows = prepared.rows[::7]
    np.testing.assert_array_equal(loaded.predict_proba(rows), split.classifier.predict_proba(rows))
    original = split.classifier
    assert [loaded.verdict(r) for r in rows[:40]] == [original.verdict(r) for r in rows[:40]]


def test_loading_the_default_model_needs_no_scikit_learn() -> None:
    code = ("import sys; from sluice.classifier.model import Classifier; "
            "Classifier.load_default(); heavy = ('sklearn', 'skops', 'scipy'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_direct_rule_is_the_same_in_training_and_classify(split: Split) -> None:
    classifier = split.classifier
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(len(classifier.classes)), size=300)
    for ratio in (1.0, 0.5, 0.2):
        bundle = dataclasses.replace(classifier.bundle, direct_ratio=ratio)
        one_by_one = [Classifier(bundle).classes[Classifier(bundle).choose(p)] for p in proba]
        assert list(choose_with_ratio(proba, classifier.classes, ratio)) == one_by_one


def test_same_answers_from_many_threads(default_classifier: Classifier, prepared: Prepared) -> None:
    mails = prepared.mails[:200]
    alone = [default_classifier.classify(m) for m in mails]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(default_classifier.classify, mails * 2))
    assert together == alone * 2


def test_model_version_names_the_data_and_the_recipe(prepared: Prepared) -> None:
    index = np.arange(30)
    version = _version(prepared, index, Recipe())
    assert version.startswith("lr-")
    assert version == _version(prepared, index, Recipe())
    assert version != _version(prepared, index, Recipe(header_weight=1.0))
    assert version != _version(prepared, np.arange(31), Recipe())


def test_classify_many_without_reasons_gives_the_same_category_and_confidence(
    default_classifier: Classifier, prepared: Prepared
) -> None:
    mails = prepared.mails[:200]
    alone = [default_classifier.classify(m) for m in mails]
    counted = default_classifier.classify_many(mails, explain=False)
    assert default_classifier.classify_many(mails) == alone
    assert [dataclasses.replace(v, reasons=()) for v in alone] == counted
