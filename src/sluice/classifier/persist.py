"""Save and load a trained model without ever unpickling, and load it fast.

A model file can come from anywhere (a colleague, a download), so loading never runs code
named by the file. Two formats:

- **Sluice model (JSON)**, the default and what ships with Sluice: the compiled scorer
  (`scoring.LinearScorer.to_document`) — vocabulary lists, float32 arrays in base64, plain
  numbers and strings — plus version, decision rule and metadata. Loading it is `json.loads`
  and `numpy.frombuffer`: nothing is imported or executed, and scikit-learn is not needed,
  so the gateway starts in milliseconds rather than seconds.
- **skops** (a file whose name ends in `.skops`): the fitted scikit-learn pipeline itself.
  Before loading, every type the file would import is listed with
  `skops.io.get_untrusted_types` and compared with `TRUSTED_TYPES`; anything else refuses
  the file.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sluice.classifier.scoring import LinearScorer, TopicPart
from sluice.core.errors import ConfigError

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

#: Bump when the bundle layout changes; older files are refused with a clear message.
FORMAT = 2
#: What a Sluice JSON model says it is, so other JSON files are refused early.
KIND = "sluice-classifier"
SKOPS_SUFFIX = ".skops"

#: Every type a skops model file may make skops import beyond its own defaults, each one
#: checked to be a plain data holder or a fitted sklearn transformer/estimator that runs no
#: code named by the file.
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
    """A trained model: its compiled scorer, decision rule and what is needed to trace it."""

    scorer: LinearScorer
    version: str
    #: Call a message `direct` whenever P(direct) >= direct_ratio x the top probability
    #: (1.0: plain most-probable category). Keeps personal mail as mail.
    direct_ratio: float
    metadata: dict[str, Any]
    #: The fitted scikit-learn pipeline; None when loaded from a JSON model.
    pipeline: Pipeline | None = field(default=None, compare=False)


def save(bundle: ModelBundle, path: Path) -> None:
    """Write a JSON model, or a skops file when `path` ends in `.skops`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == SKOPS_SUFFIX:
        import skops.io as sio

        if bundle.pipeline is None:
            raise ConfigError(f"{path}: a skops file needs the fitted pipeline; save as JSON")
        if any(isinstance(part, TopicPart) for part in bundle.scorer.parts):
            # Its topic step is a Sluice type, which loading would refuse as untrusted.
            raise ConfigError(f"{path}: a model with word-use directions is saved as JSON")
        sio.dump(
            {"format": FORMAT, "version": bundle.version,
             "direct_ratio": float(bundle.direct_ratio), "metadata": bundle.metadata,
             "pipeline": bundle.pipeline},
            path, compression=zipfile.ZIP_DEFLATED,
        )
        return
    document = {
        "kind": KIND, "format": FORMAT, "version": bundle.version,
        "direct_ratio": float(bundle.direct_ratio), "metadata": bundle.metadata,
        "scorer": bundle.scorer.to_document(),
    }
    path.write_text(json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n",
                    encoding="utf-8")


def load(path: Path) -> ModelBundle:
    """Load a model file; never unpickles, refuses anything that is not a Sluice model."""
    try:
        with path.open("rb") as fh:
            zipped = fh.read(4) == b"PK\x03\x04"
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the model file: {exc}") from exc
    return _load_skops(path) if zipped else _load_json(path)


def _load_json(path: Path) -> ModelBundle:
    try:
        document = json.loads(path.read_bytes())
    except (UnicodeDecodeError, ValueError) as exc:
        raise UntrustedModelError(f"{path}: not a Sluice model file ({exc})") from exc
    if not isinstance(document, dict) or document.get("kind") != KIND:
        raise UntrustedModelError(f"{path}: not a Sluice model file")
    if document.get("format") != FORMAT:
        raise UntrustedModelError(f"{path}: not a Sluice model file of format {FORMAT}")
    try:
        return ModelBundle(
            scorer=LinearScorer.from_document(document["scorer"]),
            version=str(document["version"]),
            direct_ratio=float(document["direct_ratio"]),
            metadata=dict(document.get("metadata") or {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UntrustedModelError(f"{path}: damaged Sluice model file ({exc!r})") from exc


def _load_skops(path: Path) -> ModelBundle:
    import skops.io as sio
    from sklearn.pipeline import Pipeline

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
        scorer=LinearScorer.from_pipeline(pipeline),
        version=str(content["version"]),
        direct_ratio=float(content["direct_ratio"]),
        metadata=dict(content.get("metadata") or {}),
        pipeline=pipeline,
    )
