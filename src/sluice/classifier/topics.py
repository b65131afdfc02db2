"""Word-use directions learned from unlabeled mail, so that 1,600 labels need not teach
every word on their own.

A few thousand labeled messages see most words once or never; tens of thousands of
unlabeled messages of the same kind show which words go together (latent semantic
analysis: a truncated SVD of their TF-IDF matrix). A message's subject and new text is
projected onto those directions and scaled to unit length, and the model reads the result
as a hundred dense columns beside the words. Only unlabeled mail fits the directions, with
every labeled message and every copy of one left out, so cross-validation stays honest: a
held-out thread's text never shaped them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

from sluice.classifier.features import Row, topic_text
from sluice.core.mail import Mail

#: The most frequent words of the unlabeled mail that the directions are built from.
VOCABULARY = 50_000
_SEED = 0
#: Characters of the new text that, with the subject, make two messages copies.
_OPENING = 200


@dataclass(frozen=True)
class TopicSpace:
    """A TF-IDF vocabulary fitted on unlabeled mail and the SVD directions over it."""

    vectorizer: TfidfVectorizer
    #: (directions, vocabulary), rounded to float16 as the model file stores them (a
    #: quarter of float64's size: the projections are most of a model file).
    components: np.ndarray
    #: Names the unlabeled messages it was fitted on (part of the model version).
    digest: str
    messages: int

    def transform(self, texts: Iterable[str]) -> np.ndarray:
        projected = np.asarray(self.vectorizer.transform(list(texts)) @ self.components.T)
        norms = np.linalg.norm(projected, axis=1, keepdims=True)
        result: np.ndarray = projected / np.where(norms > 0.0, norms, 1.0)
        return result


def quoted_text(row: Row) -> str:
    """What the quoted text's directions read: the quoted and forwarded text."""
    return row.quoted


def fit_topics(rows: Sequence[Row], raws: Sequence[bytes], dims: int,
               vocabulary: int = VOCABULARY,
               text: Callable[[Row], str] = topic_text, keep: int = 0) -> TopicSpace:
    """`dims` directions fitted on the `text` of unlabeled `rows` (`raws`: their messages, for
    the digest), over the `vocabulary` most frequent words.

    `keep` > 0 keeps only that many words after fitting: those whose rows weigh most in a
    projection (idf x the row's length), so a model file and the scorer's look-ups shrink
    while the directions stay those fitted on every word. A dropped word then counts as
    unknown: the projection is scaled to unit length, so the rest need no other change.
    """
    vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=3, max_df=0.5,
                                 max_features=vocabulary, strip_accents="unicode")
    matrix = vectorizer.fit_transform([text(r) for r in rows])
    svd = TruncatedSVD(dims, random_state=_SEED, n_iter=7).fit(matrix)
    idf = np.asarray(vectorizer.idf_, dtype=np.float32).astype(np.float64)
    components = np.asarray(svd.components_, dtype=np.float16).astype(np.float64)
    words = vectorizer.get_feature_names_out()
    if 0 < keep < len(words):
        weight = idf * np.linalg.norm(components, axis=0)
        # The heaviest `keep` words, in their vocabulary order (ties by position).
        kept = np.sort(np.argsort(-weight, kind="stable")[:keep])
        words, idf, components = words[kept], idf[kept], components[:, kept]
        # The same analysis over the kept words only (a fitted vectorizer's vocabulary
        # cannot shrink): each word's idf depends on that word alone, so it is kept as is.
        vectorizer = TfidfVectorizer(sublinear_tf=True, strip_accents="unicode",
                                     vocabulary=[str(w) for w in words])
    vectorizer.vocabulary_ = {str(w): i for i, w in enumerate(words)}
    vectorizer.idf_ = idf
    if hasattr(vectorizer, "stop_words_"):  # only for introspection, and large
        del vectorizer.stop_words_
    digest = hashlib.sha256()
    for raw_digest in sorted(hashlib.sha256(raw).digest() for raw in raws):
        digest.update(raw_digest)
    return TopicSpace(vectorizer, components, digest.hexdigest()[:16], len(rows))


class TopicProjection(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """A `TopicSpace` as a pipeline step. It is fitted already, so `fit` learns nothing:
    the labeled training folds must not move directions fitted on other mail."""

    def __init__(self, space: TopicSpace | None = None) -> None:
        self.space = space

    def fit(self, texts: object, y: object = None) -> TopicProjection:
        return self

    def transform(self, texts: Iterable[str]) -> np.ndarray:
        if self.space is None:
            raise ValueError("TopicProjection needs a fitted TopicSpace")
        return self.space.transform(texts)

    def __sklearn_is_fitted__(self) -> bool:
        return self.space is not None


def _opening(row: Row) -> tuple[str, str]:
    return row.subject, row.body[:_OPENING].strip()


def without_labeled(candidates: Iterable[tuple[bytes, Mail, Row]],
                    labeled: Iterable[tuple[bytes, Mail, Row]]) -> tuple[list[Row], list[bytes]]:
    """The candidate messages that are neither a labeled message nor a copy of one (nor a
    copy of an earlier candidate): rows and raw messages.

    A copy is the same bytes, the same Message-ID, or the same normalised subject and
    opening of the new text (the Enron sets hold copies under other paths and Message-IDs).
    """
    seen: set[bytes] = set()
    ids: set[str] = set()
    openings: set[tuple[str, str]] = set()
    for raw, mail, row in labeled:
        seen.add(hashlib.sha256(raw).digest())
        if mail.message_id:
            ids.add(mail.message_id)
        openings.add(_opening(row))
    rows: list[Row] = []
    raws: list[bytes] = []
    for raw, mail, row in candidates:
        digest = hashlib.sha256(raw).digest()
        if digest in seen or mail.message_id in ids or _opening(row) in openings:
            continue
        seen.add(digest)
        rows.append(row)
        raws.append(raw)
    return rows, raws
