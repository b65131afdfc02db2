"""Save and load a trained model with skops, trusting only the types a Sluice model is made of.

A model file can come from anywhere (a colleague, a download), so loading never unpickles:
skops rebuilds objects from an explicit description, and every type it would have to
import is checked against `TRUSTED_TYPES` first. A file naming any other type is refused.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import skops.io as sio
from sklearn.pipeline import Pipeline

from sluice.core.errors import ConfigError

#: Bump when the bundle layout changes; older files are refused with a clear message.
FORMAT = 1

#: Every type a model file may make skops import beyond its own defaults, each one checked
#: to be a plain data holder or a fitted sklearn transformer/estimator that runs no code
#: named by the file. (skops 0.16 already trusts these sklearn classes by default, so the
#: shipped model reports none; the list keeps older or stricter skops versions working.)
TRUSTED_TYPES: frozenset[str] = frozenset({
    "numpy.float64",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.feature_extraction._dict_vectorizer.DictVectorizer",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.feature_extraction.text.TfidfVectorizer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.pipeline.Pipeline",
})


class UntrustedModelError(ConfigError):
    """A model file names types outside `TRUSTED_TYPES`, or is not a Sluice model."""


@dataclass(frozen=True)
class ModelBundle:
    """A fitted pipeline and what is needed to use and trace it."""

    pipeline: Pipeline
    version: str
    #: Call a message `direct` whenever P(direct) reaches this; keeps personal mail as mail.
    direct_floor: float
    metadata: dict[str, Any]


def save(bundle: ModelBundle, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(
        {
            "format": FORMAT,
            "version": bundle.version,
            "direct_floor": float(bundle.direct_floor),
            "metadata": bundle.metadata,
            "pipeline": bundle.pipeline,
        },
        path,
        compression=zipfile.ZIP_DEFLATED,
    )


def load(path: Path) -> ModelBundle:
    """Load a model file, refusing any type that is not on the trusted list."""
    try:
        wanted = set(sio.get_untrusted_types(file=path))
    except Exception as exc:  # not a skops zip at all
        raise UntrustedModelError(f"{path}: not a Sluice model file ({exc})") from exc
    refused = sorted(wanted - TRUSTED_TYPES)
    if refused:
        raise UntrustedModelError(f"{path}: refusing to load untrusted types: {', '.join(refused)}")
    content = sio.load(path, trusted=sorted(wanted))
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise UntrustedModelError(f"{path}: not a Sluice model file of format {FORMAT}")
    pipeline = content["pipeline"]
    if not isinstance(pipeline, Pipeline):
        raise UntrustedModelError(f"{path}: the model is not a scikit-learn Pipeline")
    return ModelBundle(
        pipeline=pipeline,
        version=str(content["version"]),
        direct_floor=float(content["direct_floor"]),
        metadata=dict(content.get("metadata") or {}),
    )
