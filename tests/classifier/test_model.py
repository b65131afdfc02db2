"""The shipped model: loads safely, answers with reasons, fast, same answer from any thread."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from sluice.classifier.features import to_matrix
from sluice.classifier.model import Classifier
from sluice.classifier.reasons import describe
from sluice.classifier.training import Prepared
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


def test_fast_scoring_matches_the_sklearn_pipeline(
    default_classifier: Classifier, prepared: Prepared
) -> None:
    rows = prepared.rows[::20]
    expected = default_classifier.bundle.pipeline.predict_proba(to_matrix(rows))
    fast = np.array([default_classifier._scorer.proba(row) for row in rows])
    np.testing.assert_allclose(fast, expected, rtol=1e-6, atol=1e-9)


def test_classify_is_fast_after_load(default_classifier: Classifier, prepared: Prepared) -> None:
    mails = prepared.mails[:300]
    start = time.perf_counter()
    for mail in mails:
        default_classifier.classify(mail)
    per_message = (time.perf_counter() - start) / len(mails)
    # About 2 ms here on the corpus's long mails (see docs/classifier.md); a regression guard.
    assert per_message < 0.01


def test_same_answers_from_many_threads(default_classifier: Classifier, prepared: Prepared) -> None:
    mails = prepared.mails[:200]
    alone = [default_classifier.classify(m) for m in mails]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(default_classifier.classify, mails * 2))
    assert together == alone * 2
