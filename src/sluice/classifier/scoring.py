"""Score one message straight from the fitted coefficients, without sklearn's per-call overhead.

`Pipeline.predict_proba` on one message costs about a millisecond, almost all of it fixed
validation and dispatch. The gateway classifies every message, so the fitted pipeline is
compiled once into plain lookups (vocabulary, idf, coefficient rows) and a message is scored
as a sparse dot product. The same sparse vector gives the reasons: each present feature's
share of the push towards the chosen category. Tests pin this to `predict_proba`.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction import DictVectorizer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from sluice.classifier.features import COLUMNS, Row


@dataclass(frozen=True, slots=True)
class _TextPart:
    column: str
    offset: int
    weight: float
    analyzer: Callable[[str], list[str]]
    vocabulary: dict[str, int]
    idf: np.ndarray
    sublinear: bool
    names: np.ndarray


@dataclass(frozen=True, slots=True)
class _DictPart:
    column: str
    offset: int
    weight: float
    vocabulary: dict[str, int]
    names: np.ndarray


def _row_value(row: Row, column: str) -> str | dict[str, float]:
    value: str | dict[str, float] = getattr(row, column)
    return value


class LinearScorer:
    """A fitted `ColumnTransformer` + `LogisticRegression` pipeline, flattened for speed.

    Holds only read-only arrays and dicts after construction, so one instance can serve
    many threads at once.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        columns: ColumnTransformer = pipeline.named_steps["features"]
        model: LogisticRegression = pipeline.named_steps["model"]
        self.classes: tuple[str, ...] = tuple(str(c) for c in model.classes_)
        coef = np.asarray(model.coef_, dtype=np.float64)
        # One row per feature, so a message's features gather as one fancy-index.
        self.coef_by_feature = np.ascontiguousarray(coef.T)
        self.intercept = np.asarray(model.intercept_, dtype=np.float64)
        weights = columns.transformer_weights or {}
        self.parts: list[_TextPart | _DictPart] = []
        for name, transformer, column in columns.transformers_:
            if transformer == "drop":
                continue
            offset = columns.output_indices_[name].start
            weight = float(weights.get(name, 1.0))
            column_name = COLUMNS[int(column)]
            if isinstance(transformer, TfidfVectorizer):
                if transformer.norm != "l2" or transformer.binary:
                    raise ValueError("the fast scorer supports l2-normalised, non-binary TF-IDF")
                self.parts.append(_TextPart(
                    column_name, offset, weight, transformer.build_analyzer(),
                    dict(transformer.vocabulary_), np.asarray(transformer.idf_),
                    bool(transformer.sublinear_tf), transformer.get_feature_names_out(),
                ))
            elif isinstance(transformer, DictVectorizer):
                self.parts.append(_DictPart(
                    column_name, offset, weight, dict(transformer.vocabulary_),
                    transformer.get_feature_names_out(),
                ))
            else:
                raise ValueError(f"the fast scorer cannot read a {type(transformer).__name__}")
        self._offsets = [p.offset for p in self.parts]

    def vector(self, row: Row) -> tuple[np.ndarray, np.ndarray]:
        """The message's non-zero features as (indices, values), as the pipeline would make."""
        indices: list[int] = []
        values: list[float] = []
        for part in self.parts:
            raw = _row_value(row, part.column)
            if isinstance(part, _TextPart):
                self._text(part, str(raw), indices, values)
            else:
                assert isinstance(raw, dict)
                for key, value in raw.items():
                    position = part.vocabulary.get(key)
                    if position is not None and value:
                        indices.append(part.offset + position)
                        values.append(float(value) * part.weight)
        return np.asarray(indices, dtype=np.intp), np.asarray(values, dtype=np.float64)

    @staticmethod
    def _text(part: _TextPart, text: str, indices: list[int], values: list[float]) -> None:
        counts = Counter(
            position for token in part.analyzer(text)
            if (position := part.vocabulary.get(token)) is not None
        )
        if not counts:
            return
        positions = list(counts)
        tf = np.fromiter(counts.values(), dtype=np.float64, count=len(positions))
        if part.sublinear:
            tf = 1.0 + np.log(tf)
        weighted = tf * part.idf[positions]
        norm = math.sqrt(float(weighted @ weighted))
        weighted *= part.weight / norm
        indices.extend(part.offset + p for p in positions)
        values.extend(weighted.tolist())

    def logits(self, indices: np.ndarray, values: np.ndarray) -> np.ndarray:
        result: np.ndarray = values @ self.coef_by_feature[indices] + self.intercept
        return result

    def proba(self, row: Row) -> np.ndarray:
        return softmax(self.logits(*self.vector(row)))

    def pushes(self, indices: np.ndarray, values: np.ndarray, klass: int) -> np.ndarray:
        """Each present feature's push towards class `klass` against the average class."""
        rows = self.coef_by_feature[indices]
        result: np.ndarray = values * (rows[:, klass] - rows.mean(axis=1))
        return result

    def feature(self, index: int) -> tuple[str, str]:
        """(input column, feature name) of a global feature index."""
        part = self.parts[bisect.bisect_right(self._offsets, index) - 1]
        return part.column, str(part.names[index - part.offset])


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    result: np.ndarray = shifted / shifted.sum()
    return result
