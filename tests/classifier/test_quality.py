"""On threads it never saw, the model beats both baselines; splits never cut a thread."""

from __future__ import annotations

from collections import Counter

import numpy as np

from sluice.classifier.dataset import Example, load_examples
from sluice.classifier.evaluation import cross_validate, evaluate_model, score
from sluice.classifier.model import Classifier
from sluice.classifier.rules import rule_category
from sluice.classifier.training import Prepared, folds, prepare, thread_groups
from sluice.core.parse import normalize_line_endings, parse
from sluice.core.verdict import CATEGORIES
from tests.classifier.conftest import CORPUS, EXTRA_LABELS, HELDOUT_LABELS, QUICK, Split


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


def test_extra_labels_are_readable_new_and_by_the_guideline(examples: list[Example]) -> None:
    extra = load_examples(EXTRA_LABELS)
    assert len(extra) >= 100
    assert all(e.category in CATEGORIES and e.second in ("", *CATEGORIES) for e in extra)
    corpus_paths = {(CORPUS / e.name).resolve() for e in examples}
    extra_paths = [(EXTRA_LABELS.parent / e.name).resolve() for e in extra]
    assert len(set(extra_paths)) == len(extra_paths)
    assert not set(extra_paths) & corpus_paths


def test_extra_labels_never_put_a_thread_on_both_sides(examples: list[Example]) -> None:
    data = prepare(examples + load_examples(EXTRA_LABELS))
    for train, test in folds(data, np.arange(len(data.rows)), 5):
        assert not set(data.groups[train]) & set(data.groups[test])
    # Messages of one thread across the two label files share a group, whichever file.
    by_subject: dict[str, set[int]] = {}
    for mail, group in zip(data.mails, data.groups, strict=True):
        if mail.thread.normalized_subject:
            by_subject.setdefault(mail.thread.normalized_subject, set()).add(int(group))
    assert all(len(g) == 1 for g in by_subject.values())


def test_extra_labels_do_not_relabel_a_copy_of_a_corpus_message(
    examples: list[Example],
) -> None:
    """The Enron sets hold copies of one message under other paths (and Message-IDs):
    an extra label must not label a message the corpus labels already have."""

    def content(raw: bytes) -> tuple[str, str]:
        mail = parse(normalize_line_endings(raw))
        return mail.subject.strip().lower(), " ".join(mail.text.split())[:400]

    labeled = {content(e.raw) for e in examples}
    copies = [e.name for e in load_examples(EXTRA_LABELS) if content(e.raw) in labeled]
    assert copies == []


def _content(raw: bytes) -> tuple[str, str]:
    mail = parse(normalize_line_endings(raw))
    return mail.subject.strip().lower(), " ".join(mail.text.split())[:400]


def test_heldout_labels_share_no_message_or_thread_with_the_training_labels(
    examples: list[Example],
) -> None:
    """The held-out set measures the shipped model on mail it never saw: no held-out
    message may be a training message, a copy of one, or in a training thread."""
    training = examples + load_examples(EXTRA_LABELS)
    heldout = load_examples(HELDOUT_LABELS)
    assert len(heldout) >= 100
    assert all(e.category in CATEGORIES and e.second in ("", *CATEGORIES) for e in heldout)
    paths = [(HELDOUT_LABELS.parent / e.name).resolve() for e in heldout]
    assert len(set(paths)) == len(paths)
    trained_paths = {(CORPUS / e.name).resolve() for e in examples} | {
        (EXTRA_LABELS.parent / e.name).resolve() for e in load_examples(EXTRA_LABELS)}
    assert not set(paths) & trained_paths
    trained_content = {_content(e.raw) for e in training}
    assert [e.name for e in heldout if _content(e.raw) in trained_content] == []
    data = prepare(training + heldout)
    assert not set(data.groups[:len(training)]) & set(data.groups[len(training):])


def test_default_model_beats_both_baselines_on_the_heldout_labels(
    default_classifier: Classifier,
) -> None:
    result = evaluate_model(default_classifier, prepare(load_examples(HELDOUT_LABELS)))
    assert result.model.macro_f1 >= result.rules.macro_f1 + 0.15
    assert result.model.macro_f1 >= result.majority.macro_f1 + 0.3
    assert result.model.direct_miss <= result.rules.direct_miss


def test_agreement_labels_relabel_only_messages_already_labeled() -> None:
    """The second labeler's sample measures agreement; it adds no new message to train on."""
    agreement = load_examples(HELDOUT_LABELS.with_name("agreement_labels.csv"))
    assert len(agreement) >= 30
    assert all(e.category in CATEGORIES and e.second in ("", *CATEGORIES) for e in agreement)
    base = HELDOUT_LABELS.parent
    labeled = {(base / e.name).resolve()
               for path in (EXTRA_LABELS, HELDOUT_LABELS) for e in load_examples(path)}
    assert {(base / e.name).resolve() for e in agreement} <= labeled


def test_cross_validation_scores_the_first_label_file_alone_both_ways(
    examples: list[Example],
) -> None:
    """With several label files, the first one (the corpus's own labels) is also scored
    alone, with the direct rule and taking the most probable category."""
    first, second = examples[:300], load_examples(HELDOUT_LABELS)
    result = cross_validate(prepare(first + second), QUICK, n_folds=3)
    alone, plain = result.model_on_first_source, result.argmax_on_first_source
    assert alone is not None and plain is not None
    assert alone.support.sum() == plain.support.sum() == len(first)
    assert result.argmax.support.sum() == len(first) + len(second)
    # QUICK leaves the rule off (ratio 1.0): it picks the most probable category too.
    assert plain.macro_f1 == alone.macro_f1
    single = cross_validate(prepare(first), QUICK, n_folds=3)
    assert single.model_on_first_source is None and single.argmax_on_first_source is None
