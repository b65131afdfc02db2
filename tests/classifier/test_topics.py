"""Word-use directions from unlabeled mail: fitted on unlabeled corpus mail only, never moved
by the labeled folds, and scored by the fast scorer exactly as the pipeline scores them."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sluice.classifier import persist
from sluice.classifier.dataset import Example
from sluice.classifier.features import to_matrix, to_row, topic_text
from sluice.classifier.model import Classifier
from sluice.classifier.topics import TopicSpace, fit_topics, without_labeled
from sluice.classifier.training import Prepared, Recipe, _version, fit_directions, prepare, train
from sluice.cli import main
from sluice.core.errors import ConfigError
from sluice.core.parse import parse
from sluice.core.verdict import CATEGORIES
from tests.classifier.conftest import category_folders, unlabeled_raws


def test_copies_of_labeled_mail_are_left_out(examples: list[Example]) -> None:
    labeled_raws = [e.raw for e in examples[:30]]
    labeled = [(raw, parse(raw), to_row(parse(raw))) for raw in labeled_raws]
    fresh = unlabeled_raws(examples, 20)
    # A labeled message that lost its Message-ID is still a copy (same subject and opening).
    renamed = labeled_raws[0].replace(b"Message-ID:", b"X-Old-Message-ID:", 1)
    candidates = [*fresh, labeled_raws[1], renamed, fresh[0]]
    rows, kept = without_labeled(((r, parse(r), to_row(parse(r))) for r in candidates), labeled)
    assert kept == fresh  # the labeled one, its copy and the repeated fresh one are dropped
    assert len(rows) == len(kept)


def test_training_does_not_move_the_directions(with_topics: Classifier,
                                               spaces: dict[str, TopicSpace]) -> None:
    pipeline = with_topics.bundle.pipeline
    assert pipeline is not None
    for step_name, column in (("topic", "topic"), ("quoted_topic", "quoted")):
        step = pipeline.named_steps["features"].named_transformers_[step_name]
        np.testing.assert_array_equal(step.space.components, spaces[column].components)
        assert step.space.vectorizer.vocabulary_ == spaces[column].vectorizer.vocabulary_


def test_json_model_with_topics_gives_the_same_answers(
    tmp_path: Path, with_topics: Classifier, prepared: Prepared
) -> None:
    path = tmp_path / "model.json"
    persist.save(with_topics.bundle, path)
    loaded = Classifier.load(path)
    rows = prepared.rows[1::9]
    np.testing.assert_array_equal(loaded.predict_proba(rows), with_topics.predict_proba(rows))
    assert [loaded.verdict(r) for r in rows[:40]] == [with_topics.verdict(r) for r in rows[:40]]
    with pytest.raises(ConfigError, match="JSON"):
        persist.save(with_topics.bundle, tmp_path / "model.skops")


def _topic_specs(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [spec for spec in document["scorer"]["parts"] if spec["kind"] == "topics"]


def test_projections_are_stored_as_float16(tmp_path: Path, with_topics: Classifier,
                                           prepared: Prepared) -> None:
    """The fitted directions are float16 values, so the file holds them in half the bytes
    of float32 and loses nothing; a file of the earlier layout (float32, no dtype named)
    still loads to the same answers."""
    path = tmp_path / "model.json"
    persist.save(with_topics.bundle, path)
    document = json.loads(path.read_text())
    specs = _topic_specs(document)
    assert [spec["projection_dtype"] for spec in specs] == ["<f2", "<f2"]
    for spec in specs:
        stored = base64.b64decode(spec["projection"])
        assert len(stored) == 2 * len(spec["words"]) * len(spec["names"])
        wide = np.frombuffer(stored, dtype="<f2").astype("<f4")
        spec["projection"] = base64.b64encode(wide.tobytes()).decode()
        del spec["projection_dtype"]
    older = tmp_path / "older.json"
    older.write_text(json.dumps(document))
    rows = prepared.rows[1::9]
    np.testing.assert_array_equal(Classifier.load(older).predict_proba(rows),
                                  with_topics.predict_proba(rows))


@pytest.mark.parametrize("dtype", ["<f8", "|O", "<i2", ["<f2"], None])
def test_a_projection_of_another_dtype_is_refused(tmp_path: Path, with_topics: Classifier,
                                                  dtype: Any) -> None:
    path = tmp_path / "model.json"
    persist.save(with_topics.bundle, path)
    document = json.loads(path.read_text())
    _topic_specs(document)[1]["projection_dtype"] = dtype
    path.write_text(json.dumps(document))
    with pytest.raises(persist.UntrustedModelError):
        Classifier.load(path)


def test_prepare_fits_directions_only_on_unlabeled_mail(examples: list[Example]) -> None:
    some = examples[:40]
    raws = unlabeled_raws(examples, 150)
    data = prepare(some, [some[0].raw, *raws], recipe=Recipe(topic_dims=5, quoted_topic_dims=5))
    assert data.topics is not None and data.quoted_topics is not None
    assert data.topics.messages == len(raws)  # the labeled message offered was left out
    assert prepare(some).topics is None


def test_train_with_unlabeled_mail(tmp_path: Path, examples: list[Example],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    data = category_folders(tmp_path / "data", per_category=12)
    unlabeled = tmp_path / "unlabeled"
    unlabeled.mkdir()
    for n, raw in enumerate(unlabeled_raws(examples, 200)):
        (unlabeled / f"{n}.eml").write_bytes(raw)
    (unlabeled / "README.md").write_text("# not a message\n")
    out = tmp_path / "model.json"
    assert main(["train", "--data", str(data), "--unlabeled", str(unlabeled), "--out", str(out),
                 "--no-corrections"]) == 0
    document = json.loads(out.read_text())
    assert document["metadata"]["unlabeled"]["messages"] == 200
    kinds = [(p["kind"], p["column"]) for p in document["scorer"]["parts"]]
    assert ("topics", "topic") in kinds and ("topics", "quoted") in kinds
    assert main(["classify", "--json", "--model", str(out), str(data)]) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(answers) == 12 * len(CATEGORIES)
    assert {a["category"] for a in answers} <= set(CATEGORIES)


def test_keeping_the_heaviest_words_drops_only_the_others(examples: list[Example]) -> None:
    """`keep` words: the directions are those fitted on every word, read over the heaviest
    `keep` words only (the others count as unknown), as the full space would read them with
    the dropped words' rows set to zero."""
    raws = unlabeled_raws(examples, 300)
    rows = [to_row(parse(raw)) for raw in raws]
    full = fit_topics(rows, raws, 8)
    kept = fit_topics(rows, raws, 8, keep=500)
    assert len(kept.vectorizer.vocabulary_) == 500 < len(full.vectorizer.vocabulary_)
    position = full.vectorizer.vocabulary_
    words = sorted(kept.vectorizer.vocabulary_, key=kept.vectorizer.vocabulary_.__getitem__)
    columns = [position[w] for w in words]
    np.testing.assert_array_equal(kept.components, full.components[:, columns])
    weight = full.vectorizer.idf_ * np.linalg.norm(full.components, axis=0)
    dropped = np.setdiff1d(np.arange(len(weight)), columns)
    assert weight[dropped].max() <= weight[columns].min()
    masked = np.zeros_like(full.components)
    masked[:, columns] = full.components[:, columns]
    texts = [topic_text(to_row(parse(e.raw))) for e in examples[:60]]
    projected = np.asarray(full.vectorizer.transform(texts) @ masked.T)
    norms = np.linalg.norm(projected, axis=1, keepdims=True)
    np.testing.assert_allclose(kept.transform(texts),
                               projected / np.where(norms > 0, norms, 1.0), atol=1e-12)


def test_a_lean_recipe_scores_the_same_fast_and_from_its_file(
    tmp_path: Path, examples: list[Example], prepared: Prepared
) -> None:
    """Fewer quoted-text directions, kept words and no column of quoted words: the fast
    scorer and a saved file give the pipeline's answers."""
    recipe = Recipe(tune_direct_rule=False, topic_dims=10, quoted_topic_dims=4,
                    topic_words=400, quoted_weight=0.0)
    raws = unlabeled_raws(examples, 300)
    topics, quoted = fit_directions([to_row(parse(raw)) for raw in raws], raws, recipe)
    assert topics is not None and quoted is not None
    assert quoted.components.shape == (4, 400) and topics.components.shape == (10, 400)
    data = dataclasses.replace(prepared, topics=topics, quoted_topics=quoted)
    classifier = Classifier(train(data, np.arange(0, len(data.rows), 2), recipe,
                                  version="test"))
    assert classifier.bundle.pipeline is not None
    columns = [part.column for part in classifier._scorer.parts]
    assert columns == ["subject", "body", "headers", "topic", "quoted"]
    rows = data.rows[1::9]
    expected = classifier.bundle.pipeline.predict_proba(to_matrix(rows))
    np.testing.assert_allclose(classifier.predict_proba(rows), expected, rtol=1e-6, atol=1e-9)
    path = tmp_path / "model.json"
    persist.save(classifier.bundle, path)
    loaded = Classifier.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(rows), classifier.predict_proba(rows))
    assert [loaded.verdict(r) for r in rows[:40]] == [classifier.verdict(r) for r in rows[:40]]


def test_the_direction_knobs_name_another_model_only_when_changed(
    prepared: Prepared, spaces: dict[str, TopicSpace]
) -> None:
    data = dataclasses.replace(prepared, topics=spaces["topic"], quoted_topics=spaces["quoted"])
    index = np.arange(30)
    version = _version(data, index, Recipe())
    changes = [{"quoted_topic_dims": 50}, {"topic_vocabulary": 10_000}, {"topic_words": 8_000}]
    for change in changes:
        assert _version(data, index, Recipe(**change)) != version  # type: ignore[arg-type]
        # Without directions they change nothing, so a labels-only model keeps its name.
        assert _version(prepared, index, Recipe(**change)) == _version(  # type: ignore[arg-type]
            prepared, index, Recipe())
