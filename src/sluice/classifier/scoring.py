"""Score one message straight from the fitted coefficients, without scikit-learn at all.

`Pipeline.predict_proba` on one message costs about a millisecond, almost all of it fixed
validation and dispatch, and importing scikit-learn takes seconds. The gateway classifies
every message, so a fitted pipeline is compiled once into plain lookups (vocabulary, idf,
coefficient rows) and a message is scored as a sparse dot product. The compiled form is
also what a model file holds (`persist`), so loading needs only numpy. The same sparse
vector gives the reasons: each present feature's share of the push towards the chosen
category. Tests pin this to `predict_proba`.

The text analyzer below re-implements scikit-learn's word analyzer (lowercase, strip accents
the "unicode" way, `token_pattern`, word n-grams) exactly; only that configuration is
accepted when compiling.
"""

from __future__ import annotations

import base64
import bisect
import itertools
import math
import operator
import re
import unicodedata
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sluice.classifier.features import COLUMNS, Row, words

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

#: Coefficients and idf are stored as float32 (the fitted model is rounded to match).
STORED_DTYPE = "<f4"
#: Topic projections are stored as float16 when they are float16 values (as
#: `topics.fit_topics` makes them), else as float32: they are most of a model file.
PROJECTION_DTYPES = ("<f2", STORED_DTYPE)
#: The position of a term not in the vocabulary (an int, so `__ne__` answers a bool).
_MISSING = -1


def _strip_accents(text: str) -> str:
    if text.isascii():
        return text
    normalized = unicodedata.normalize("NFKD", text)
    return "".join(c for c in normalized if not unicodedata.combining(c))


@dataclass(frozen=True, slots=True)
class TextPart:
    """One TF-IDF column: how to cut its text into terms and what each term weighs."""

    column: str
    offset: int
    weight: float
    vocabulary: dict[str, int]
    idf: np.ndarray
    sublinear: bool
    names: tuple[str, ...]
    token_pattern: re.Pattern[str]
    ngram_max: int
    lowercase: bool
    strip_accents: bool
    #: Words that start / end some word pair of the vocabulary: a pair whose words are not
    #: both in these is not in the vocabulary either, so it is never built.
    firsts: frozenset[str]
    seconds: frozenset[str]
    #: Finds the same tokens as `token_pattern`, faster (see `_SAME_TOKENS`).
    scanner: re.Pattern[str]
    #: (word, word) -> position of the pair "word word", when no token can hold a space
    #: (so a name with one space is a pair and nothing else); else None.
    pair_vocabulary: dict[tuple[str, str], int] | None

    def tokens(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        if self.strip_accents:
            text = _strip_accents(text)
        if self.scanner.pattern == _WORDS_OF_TWO and text.isascii():
            # Word runs of two or more characters, cut in C (see `features.words`).
            runs = words(text)
            return list(itertools.compress(runs, map(_ONE.__lt__, map(len, runs))))
        tokens: list[str] = self.scanner.findall(text)
        return tokens

    def terms(self, text: str, tokens: list[str] | None = None) -> list[str]:
        """scikit-learn's word analyzer (ngram_range=(1, ngram_max)), less the word pairs
        that cannot be in the vocabulary. `tokens`: `self.tokens(text)` if already cut."""
        tokens = self.tokens(text) if tokens is None else tokens
        if self.ngram_max == 1:
            return tokens
        terms = list(tokens)
        if self.ngram_max == 2:
            # The pairs (a, b) with a in firsts and b in seconds, in order, chosen and
            # joined by map/compress in C: no Python bytecode per word (~0.2 µs each).
            wanted = map(operator.and_, map(self.firsts.__contains__, tokens),
                         map(self.seconds.__contains__, tokens[1:]))
            terms.extend(map(" ".join, itertools.compress(itertools.pairwise(tokens), wanted)))
            return terms
        for n in range(2, min(self.ngram_max, len(tokens)) + 1):
            terms.extend(" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
        return terms

    def known(self, text: str, tokens: list[str] | None = None) -> Iterator[int]:
        """Vocabulary positions of `terms(text)` that are in the vocabulary, in order.

        With word pairs looked up as (word, word) tuples no pair string is ever built: a
        tuple's hash comes from its words' cached hashes. Runs in C (map, filter, chain).
        """
        found: Iterator[int]
        if self.pair_vocabulary is None:
            found = map(self.vocabulary.get, self.terms(text, tokens),
                        itertools.repeat(_MISSING))
        else:
            tokens = self.tokens(text) if tokens is None else tokens
            found = itertools.chain(
                map(self.vocabulary.get, tokens, itertools.repeat(_MISSING)),
                map(self.pair_vocabulary.get, itertools.pairwise(tokens),
                    itertools.repeat(_MISSING)))
        return filter(_MISSING.__ne__, found)


#: scikit-learn's default token pattern finds the maximal runs of two or more word
#: characters, which `\w\w+` finds too without testing word boundaries (a third faster).
_WORDS_OF_TWO = r"\w\w+"
_SAME_TOKENS = {r"(?u)\b\w\w+\b": _WORDS_OF_TWO}
_ONE = 1


def _text_part(column: str, offset: int, weight: float, names: tuple[str, ...],
               idf: np.ndarray, sublinear: bool, token_pattern: str, ngram_max: int,
               lowercase: bool, strip_accents: bool) -> TextPart:
    # Word pairs matter only with ngram_max 2 or more (a topic vocabulary of ~30,000 single
    # words need not be scanned for them when a model loads).
    pairs = [name.split(" ") for name in names if name.count(" ") == 1] if ngram_max > 1 else []
    pair_vocabulary = None
    if ngram_max == 2 and token_pattern in _SAME_TOKENS:
        pair_vocabulary = {(a, b): i for i, name in enumerate(names) if name.count(" ") == 1
                           for a, b in [name.split(" ")]}
    return TextPart(
        column, offset, weight, {name: i for i, name in enumerate(names)}, idf, sublinear,
        names, re.compile(token_pattern), ngram_max, lowercase, strip_accents,
        frozenset(p[0] for p in pairs), frozenset(p[1] for p in pairs),
        re.compile(_SAME_TOKENS.get(token_pattern, token_pattern)), pair_vocabulary,
    )


@dataclass(frozen=True, slots=True)
class DictPart:
    """The header-facts column: feature name -> position."""

    column: str
    offset: int
    weight: float
    vocabulary: dict[str, int]
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TopicPart:
    """Word-use directions (`topics`): the text's TF-IDF vector over their own vocabulary,
    projected onto them and scaled to unit length; one feature per direction."""

    column: str
    offset: int
    weight: float
    names: tuple[str, ...]
    #: The directions' vocabulary and idf, cut into words as scikit-learn does.
    text: TextPart
    #: (vocabulary, directions), as stored: float16 when its values are (`_compact`), so a
    #: loaded model holds it in a quarter of the memory; only saving reads it.
    projection: np.ndarray
    #: The projection with each word's row times its idf: the unit-length result does not
    #: depend on the TF-IDF vector's own length, so only tf x idf x projection is summed.
    weighted: np.ndarray
    indices: np.ndarray

    def tokens(self, row: Row) -> list[str]:
        if self.column != "topic":
            return self.text.tokens(getattr(row, self.column))
        # Words never span the newline that joins subject and body in `topic_text`.
        return self.text.tokens(row.subject) + self.text.tokens(row.body)

    def features(self, row: Row,
                 tokens: list[str] | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """(global indices, values); `tokens`: `self.tokens(row)` if already cut."""
        # The directions' vocabulary has single words only, so the tokens are the terms.
        counted = Counter(self.text.known("", self.tokens(row) if tokens is None else tokens))
        if not counted:
            return None
        n = len(counted)
        positions = np.fromiter(counted.keys(), dtype=np.intp, count=n)
        projected = sublinear_tf(counted.values(), n) @ self.weighted[positions]
        norm = math.sqrt(float(projected @ projected))
        if norm == 0.0:
            return None
        return self.indices, projected * (self.weight / norm)


#: What each kind of directions reads (an input column) and calls its features: names of
#: three or more words, which no TF-IDF feature (one or two words) can have.
TOPIC_NAMES = {"topic": "text as a whole, direction", "quoted": "quoted text, direction"}


def _topic_part(column: str, offset: int, weight: float, n_directions: int,
                words_: tuple[str, ...], idf: np.ndarray, projection: np.ndarray,
                token_pattern: str, lowercase: bool, strip_accents: bool) -> TopicPart:
    if column not in TOPIC_NAMES:
        raise ValueError(f"no topic directions read {column!r}")
    if projection.shape != (len(words_), n_directions):
        raise ValueError("the topic directions do not match their vocabulary")
    text = _text_part(column, 0, 1.0, words_, idf, True, token_pattern, 1, lowercase,
                      strip_accents)
    names = tuple(f"{TOPIC_NAMES[column]} {i}" for i in range(n_directions))
    # Widened to float64 inside the product (exact for float16/float32 values): the same
    # numbers as multiplying a float64 copy, without allocating one.
    weighted = np.multiply(projection, idf[:, None], dtype=np.float64)
    return TopicPart(column, offset, weight, names, text, _compact(projection), weighted,
                     offset + np.arange(n_directions))


def _encode(array: np.ndarray, dtype: str = STORED_DTYPE) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode()


def _decode(text: str, shape: tuple[int, ...], dtype: str = STORED_DTYPE,
            widen: bool = True) -> np.ndarray:
    """The array, as float64 (`widen`) or as stored (read-only)."""
    flat = np.frombuffer(base64.b64decode(text, validate=True), dtype=dtype)
    if flat.size != math.prod(shape):
        raise ValueError(f"array of {flat.size} values, expected shape {shape}")
    return (flat.astype(np.float64) if widen else flat).reshape(shape)


def _projection_dtype(projection: np.ndarray) -> str:
    """The smallest of `PROJECTION_DTYPES` that holds every value exactly."""
    for dtype in PROJECTION_DTYPES:
        with np.errstate(over="ignore"):
            if np.array_equal(projection.astype(dtype), projection):
                return dtype
    return STORED_DTYPE


def _compact(projection: np.ndarray) -> np.ndarray:
    """`projection` in the smallest dtype that holds it exactly."""
    if projection.dtype in (np.float16, np.float32):  # as a model file holds it
        return projection
    return np.asarray(projection, dtype=_projection_dtype(projection))


class LinearScorer:
    """A fitted `ColumnTransformer` + `LogisticRegression`, flattened for speed.

    Holds only read-only arrays and dicts after construction, so one instance can serve
    many threads at once.
    """

    def __init__(self, classes: tuple[str, ...], coef_by_feature: np.ndarray,
                 intercept: np.ndarray, parts: list[TextPart | DictPart | TopicPart]) -> None:
        self.classes = classes
        # One row per feature, so a message's features gather as one fancy-index.
        self.coef_by_feature = np.ascontiguousarray(coef_by_feature, dtype=np.float64)
        self.intercept = np.asarray(intercept, dtype=np.float64)
        #: Each feature's mean coefficient over the classes (for `pushes`).
        self.coef_mean = self.coef_by_feature.mean(axis=1)
        self.parts = parts
        self._offsets = [p.offset for p in parts]
        #: Text columns whose words topic parts read too: cut once when they are cut the same
        #: way (same pattern, case and accent handling), else each part cuts its own.
        texts = {p.column: p for p in parts if isinstance(p, TextPart)}
        shared: set[str] = set()
        for topic in (p for p in parts if isinstance(p, TopicPart)):
            wanted = _TOPIC_READS[topic.column]
            if all(c in texts and _same_words(texts[c], topic.text) for c in wanted):
                shared.update(wanted)
        self._shared: frozenset[str] = frozenset(shared)
        n_features = sum(len(p.names) for p in parts)
        if self.coef_by_feature.shape != (n_features, len(classes)):
            raise ValueError("coefficients do not match the features and classes")

    def _shared_tokens(self, part: TopicPart, shared: dict[str, list[str]]) -> list[str] | None:
        """The words of `part`'s text, from the text columns' own cut, or None."""
        wanted = _TOPIC_READS[part.column]
        if not all(c in shared for c in wanted):
            return None
        if len(wanted) == 1:
            return shared[wanted[0]]
        return shared[wanted[0]] + shared[wanted[1]]

    @classmethod
    def from_pipeline(cls, pipeline: Pipeline) -> LinearScorer:
        from sklearn.feature_extraction import DictVectorizer
        from sklearn.feature_extraction.text import TfidfVectorizer

        from sluice.classifier.topics import TopicProjection

        columns = pipeline.named_steps["features"]
        model = pipeline.named_steps["model"]
        weights = columns.transformer_weights or {}
        parts: list[TextPart | DictPart | TopicPart] = []
        for name, transformer, column in columns.transformers_:
            if transformer == "drop":
                continue
            offset = columns.output_indices_[name].start
            weight = float(weights.get(name, 1.0))
            column_name = COLUMNS[int(column)]
            if isinstance(transformer, TfidfVectorizer):
                supported = (transformer.norm == "l2" and not transformer.binary
                             and transformer.analyzer == "word"
                             and transformer.strip_accents in (None, "unicode")
                             and transformer.ngram_range[0] == 1
                             and transformer.stop_words is None
                             and transformer.preprocessor is None
                             and transformer.tokenizer is None and transformer.use_idf)
                if not supported:
                    raise ValueError("the fast scorer supports plain word TF-IDF (l2, idf, "
                                     "ngrams from 1, no stop words or custom analyzers)")
                parts.append(_text_part(
                    column_name, offset, weight,
                    tuple(str(n) for n in transformer.get_feature_names_out()),
                    np.asarray(transformer.idf_, dtype=np.float64),
                    bool(transformer.sublinear_tf), str(transformer.token_pattern),
                    int(transformer.ngram_range[1]), bool(transformer.lowercase),
                    transformer.strip_accents == "unicode",
                ))
            elif isinstance(transformer, DictVectorizer):
                parts.append(DictPart(
                    column_name, offset, weight,
                    {str(k): int(v) for k, v in transformer.vocabulary_.items()},
                    tuple(str(n) for n in transformer.get_feature_names_out()),
                ))
            elif isinstance(transformer, TopicProjection) and transformer.space is not None:
                vectorizer = transformer.space.vectorizer
                parts.append(_topic_part(
                    column_name, offset, weight, transformer.space.components.shape[0],
                    tuple(str(n) for n in vectorizer.get_feature_names_out()),
                    np.asarray(vectorizer.idf_, dtype=np.float64),
                    np.ascontiguousarray(transformer.space.components.T),
                    str(vectorizer.token_pattern), bool(vectorizer.lowercase),
                    vectorizer.strip_accents == "unicode",
                ))
            else:
                raise ValueError(f"the fast scorer cannot read a {type(transformer).__name__}")
        return cls(tuple(str(c) for c in model.classes_),
                   np.asarray(model.coef_, dtype=np.float64).T,
                   np.asarray(model.intercept_, dtype=np.float64), parts)

    # -- the stored form: JSON-able values only (see persist) --------------------------

    def to_document(self) -> dict[str, Any]:
        parts: list[dict[str, Any]] = []
        for part in self.parts:
            common = {"column": part.column, "offset": part.offset, "weight": part.weight,
                      "names": list(part.names)}
            if isinstance(part, TextPart):
                parts.append({**common, "kind": "tfidf", "idf": _encode(part.idf),
                              "sublinear": part.sublinear,
                              "token_pattern": part.token_pattern.pattern,
                              "ngram_max": part.ngram_max, "lowercase": part.lowercase,
                              "strip_accents": part.strip_accents})
            elif isinstance(part, TopicPart):
                text = part.text
                dtype = _projection_dtype(part.projection)
                parts.append({**common, "kind": "topics", "words": list(text.names),
                              "idf": _encode(text.idf),
                              "projection": _encode(part.projection, dtype),
                              "projection_dtype": dtype,
                              "token_pattern": text.token_pattern.pattern,
                              "lowercase": text.lowercase,
                              "strip_accents": text.strip_accents})
            else:
                parts.append({**common, "kind": "dict"})
        return {"classes": list(self.classes), "intercept": _encode(self.intercept),
                "coef_by_feature": _encode(self.coef_by_feature), "parts": parts}

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> LinearScorer:
        """Rebuild from `to_document` output; raises ValueError/KeyError/TypeError if malformed."""
        classes = tuple(str(c) for c in doc["classes"])
        parts: list[TextPart | DictPart | TopicPart] = []
        n_features = 0
        for spec in doc["parts"]:
            names = tuple(str(n) for n in spec["names"])
            vocabulary = {name: i for i, name in enumerate(names)}
            column = str(spec["column"])
            if column not in COLUMNS:
                raise ValueError(f"unknown input column {column!r}")
            offset, weight = int(spec["offset"]), float(spec["weight"])
            if spec["kind"] == "tfidf":
                parts.append(_text_part(
                    column, offset, weight, names, _decode(spec["idf"], (len(names),)),
                    bool(spec["sublinear"]), str(spec["token_pattern"]), int(spec["ngram_max"]),
                    bool(spec["lowercase"]), bool(spec["strip_accents"]),
                ))
            elif spec["kind"] == "dict":
                parts.append(DictPart(column, offset, weight, vocabulary, names))
            elif spec["kind"] == "topics":
                words_ = tuple(str(w) for w in spec["words"])
                dtype = spec.get("projection_dtype", STORED_DTYPE)
                if dtype not in PROJECTION_DTYPES:
                    raise ValueError(f"unknown projection dtype {dtype!r}")
                parts.append(_topic_part(
                    column, offset, weight, len(names), words_,
                    _decode(spec["idf"], (len(words_),)),
                    _decode(spec["projection"], (len(words_), len(names)), dtype,
                            widen=False),
                    str(spec["token_pattern"]), bool(spec["lowercase"]),
                    bool(spec["strip_accents"]),
                ))
            else:
                raise ValueError(f"unknown feature part {spec['kind']!r}")
            n_features += len(names)
        return cls(classes, _decode(doc["coef_by_feature"], (n_features, len(classes))),
                   _decode(doc["intercept"], (len(classes),)), parts)

    # -- scoring ------------------------------------------------------------------------

    def vector(self, row: Row) -> tuple[np.ndarray, np.ndarray]:
        """The message's non-zero features as (indices, values), as the pipeline would make."""
        index_parts: list[np.ndarray] = []
        value_parts: list[np.ndarray] = []
        shared: dict[str, list[str]] = {}
        for part in self.parts:
            if isinstance(part, TextPart):
                text = getattr(row, part.column)
                tokens = None
                if part.column in self._shared:
                    tokens = shared[part.column] = part.tokens(text)
                found = _text(part, text, tokens)
            elif isinstance(part, TopicPart):
                found = part.features(row, self._shared_tokens(part, shared))
            else:
                found = None
            if found is not None:
                index_parts.append(found[0])
                value_parts.append(found[1])
            if not isinstance(part, DictPart):
                continue
            # The known, non-zero facts in the dict's order (no Python loop per fact).
            raw: dict[str, float] = getattr(row, part.column)
            n = len(raw)
            positions = np.fromiter(map(part.vocabulary.get, raw, itertools.repeat(_MISSING)),
                                    dtype=np.intp, count=n)
            values = np.fromiter(raw.values(), dtype=np.float64, count=n)
            present = (positions != _MISSING) & (values != 0.0)
            index_parts.append(positions[present] + part.offset)
            value_parts.append(values[present] * part.weight)
        if not index_parts:
            return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.float64)
        return np.concatenate(index_parts), np.concatenate(value_parts)

    def logits(self, indices: np.ndarray, values: np.ndarray) -> np.ndarray:
        result: np.ndarray = values @ self.coef_by_feature[indices] + self.intercept
        return result

    def proba(self, row: Row) -> np.ndarray:
        return softmax(self.logits(*self.vector(row)))

    def pushes(self, indices: np.ndarray, values: np.ndarray, klass: int) -> np.ndarray:
        """Each present feature's push towards class `klass` against the average class."""
        result: np.ndarray = values * (self.coef_by_feature[indices, klass]
                                       - self.coef_mean[indices])
        return result

    def feature(self, index: int) -> tuple[str, str]:
        """(input column, feature name) of a global feature index."""
        part = self.parts[bisect.bisect_right(self._offsets, index) - 1]
        return part.column, part.names[index - part.offset]


def _text(part: TextPart, text: str,
          tokens: list[str] | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """(global indices, tf-idf values) of the vocabulary terms in `text`, or None.
    `tokens`: `part.tokens(text)` if already cut."""
    # Look every term up and count the positions of the known ones, all in C (map, filter,
    # Counter: no Python loop per term). The positions come in the order of each known
    # term's first appearance, as counting the terms first would give them.
    counted = Counter(part.known(text, tokens))
    if not counted:
        return None
    n = len(counted)
    positions = np.fromiter(counted.keys(), dtype=np.intp, count=n)
    if part.sublinear:
        tf = sublinear_tf(counted.values(), n)
    else:
        tf = np.fromiter(counted.values(), dtype=np.float64, count=n)
    weighted = tf * part.idf[positions]
    weighted *= part.weight / math.sqrt(float(weighted @ weighted))
    return positions + part.offset, weighted


#: 1 + log(count) for the counts most terms have, by numpy's own log when the module loads:
#: the same function per element, so the same bits as taking the log of every message's
#: counts, for two numpy calls fewer per column.
_SUBLINEAR_TF: tuple[float, ...] = (
    math.nan, *(1.0 + np.log(np.arange(1, 256, dtype=np.float64))).tolist())


def sublinear_tf(counts: Collection[int], n: int) -> np.ndarray:
    """1 + log(count) of `n` counts (each at least 1), as `1.0 + np.log(counts)` gives it."""
    try:
        return np.fromiter(map(_SUBLINEAR_TF.__getitem__, counts), dtype=np.float64, count=n)
    except IndexError:  # a count past the table: a long message
        result: np.ndarray = 1.0 + np.log(np.fromiter(counts, dtype=np.float64, count=n))
        return result


#: The text columns whose words make each topic part's text (`features.topic_text`).
_TOPIC_READS: dict[str, tuple[str, ...]] = {"topic": ("subject", "body"), "quoted": ("quoted",)}


def _same_words(a: TextPart, b: TextPart) -> bool:
    return (a.token_pattern.pattern, a.lowercase, a.strip_accents) == (
        b.token_pattern.pattern, b.lowercase, b.strip_accents)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    result: np.ndarray = shifted / shifted.sum()
    return result
