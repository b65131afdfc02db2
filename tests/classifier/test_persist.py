"""Model files load only when every type they name is on the trusted list."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from sluice.classifier import persist
from sluice.classifier.model import DEFAULT_MODEL, Classifier
from sluice.classifier.training import Prepared
from tests.classifier.conftest import Split


def test_shipped_model_is_a_json_model() -> None:
    document = json.loads(DEFAULT_MODEL.read_text())
    assert document["kind"] == persist.KIND and document["format"] == persist.FORMAT
    assert Classifier.load(DEFAULT_MODEL).version == document["version"]


def test_a_skops_file_names_only_trusted_types(tmp_path: Path, split: Split) -> None:
    path = tmp_path / "model.skops"
    persist.save(split.classifier.bundle, path)
    assert set(sio.get_untrusted_types(file=path)) <= persist.TRUSTED_TYPES


@pytest.mark.parametrize("mangle", [
    lambda d: {**d, "kind": "something-else"},
    lambda d: {**d, "format": 1},
    lambda d: {**d, "scorer": {**d["scorer"], "coef_by_feature": "AAAA"}},
    lambda d: {**d, "scorer": {**d["scorer"], "parts": [{"kind": "pickle"}]}},
    lambda d: [d],
])
def test_a_damaged_json_model_is_refused(
    tmp_path: Path, split: Split, mangle: Callable[[Any], Any]
) -> None:
    good = tmp_path / "good.json"
    persist.save(split.classifier.bundle, good)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(mangle(json.loads(good.read_text()))))
    with pytest.raises(persist.UntrustedModelError):
        Classifier.load(bad)


def test_a_file_naming_an_untrusted_function_is_refused(tmp_path: Path) -> None:
    evil = Pipeline([("features", FunctionTransformer(os.system)),
                     ("model", LogisticRegression())])
    path = tmp_path / "evil.skops"
    sio.dump({"format": persist.FORMAT, "version": "x", "direct_ratio": 1.0,
              "metadata": {}, "pipeline": evil}, path)
    with pytest.raises(persist.UntrustedModelError, match="system"):
        Classifier.load(path)


def test_a_file_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.skops"
    path.write_bytes(b"\x80\x04\x95 this is a pickle, not a skops file")
    with pytest.raises(persist.UntrustedModelError):
        Classifier.load(path)


@pytest.mark.parametrize("name", ["model.skops", "model.json"])
def test_save_and_load_keep_the_answers(
    tmp_path: Path, prepared: Prepared, split: Split, name: str
) -> None:
    path = tmp_path / name
    persist.save(split.classifier.bundle, path)
    loaded = Classifier.load(path)
    rows = prepared.rows[:50]
    np.testing.assert_allclose(loaded.predict_proba(rows), split.classifier.predict_proba(rows))
    assert loaded.version == split.classifier.version
    assert loaded.bundle.direct_ratio == split.classifier.bundle.direct_ratio
