"""Model files load only when every type they name is on the trusted list."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from sluice.classifier import persist
from sluice.classifier.features import to_matrix
from sluice.classifier.model import DEFAULT_MODEL, Classifier
from sluice.classifier.training import Prepared
from tests.classifier.conftest import Split


def test_shipped_model_names_only_trusted_types() -> None:
    assert set(sio.get_untrusted_types(file=DEFAULT_MODEL)) <= persist.TRUSTED_TYPES


def test_a_file_naming_an_untrusted_function_is_refused(tmp_path: Path) -> None:
    evil = Pipeline([("features", FunctionTransformer(os.system)),
                     ("model", LogisticRegression())])
    path = tmp_path / "evil.skops"
    sio.dump({"format": persist.FORMAT, "version": "x", "direct_floor": 1.0,
              "metadata": {}, "pipeline": evil}, path)
    with pytest.raises(persist.UntrustedModelError, match="system"):
        Classifier.load(path)


def test_a_file_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.skops"
    path.write_bytes(b"\x80\x04\x95 this is a pickle, not a skops file")
    with pytest.raises(persist.UntrustedModelError):
        Classifier.load(path)


def test_save_and_load_keep_the_answers(tmp_path: Path, prepared: Prepared, split: Split) -> None:
    path = tmp_path / "model.skops"
    persist.save(split.classifier.bundle, path)
    loaded = Classifier.load(path)
    rows = to_matrix(prepared.rows[:50])
    np.testing.assert_allclose(loaded.bundle.pipeline.predict_proba(rows),
                               split.classifier.bundle.pipeline.predict_proba(rows))
    assert loaded.version == split.classifier.version
