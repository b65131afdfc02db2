"""On threads it never saw, the model beats both baselines; splits never cut a thread."""

from __future__ import annotations

from collections import Counter

import numpy as np

from sluice.classifier.evaluation import score
from sluice.classifier.rules import rule_category
from sluice.classifier.training import Prepared, folds, thread_groups
from tests.classifier.conftest import Split


def test_replies_share_the_thread_of_their_subject(prepared: Prepared) -> None:
    groups = thread_groups(prepared.mails)
    by_subject: dict[str, set[int]] = {}
    for mail, group in zip(prepared.mails, groups, strict=True):
        if mail.thread.normalized_subject:
            by_subject.setdefault(mail.thread.normalized_subject, set()).add(int(group))
    assert all(len(g) == 1 for g in by_subject.values())
    assert len(set(groups.tolist())) < len(prepared.mails)  # some threads have several messages


def test_no_thread_is_on_both_sides_of_a_split(prepared: Prepared) -> None:
    for train, test in folds(prepared, np.arange(len(prepared.rows)), 5):
        assert not set(prepared.groups[train]) & set(prepared.groups[test])


def test_model_beats_majority_and_header_rules_on_held_out_threads(
    prepared: Prepared, split: Split
) -> None:
    y, second = prepared.y[split.test], prepared.second[split.test]
    rows = [prepared.rows[i] for i in split.test]
    model = score("model", y, second, np.array(split.classifier.predict(rows)))
    majority_class = Counter(prepared.y[split.train].tolist()).most_common(1)[0][0]
    majority = score("majority", y, second, np.full(len(y), majority_class))
    rules = score("rules", y, second,
                  np.array([rule_category(prepared.mails[i]) for i in split.test]))
    assert model.macro_f1 >= 0.75
    assert model.macro_f1 >= majority.macro_f1 + 0.5
    assert model.macro_f1 >= rules.macro_f1 + 0.2
