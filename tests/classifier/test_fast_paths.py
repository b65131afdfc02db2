"""The classifier's shortcuts give what the plain ways give, on real corpus mail.

Each shortcut in the hot path (quote search by form, keyword counting, the term vector) is
compared with a straightforward version: the full quote pattern, a per-word loop, and
scikit-learn's own `TfidfVectorizer` rebuilt from what the shipped model keeps.
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import TfidfVectorizer

from sluice.classifier import features, textclean
from sluice.classifier.dataset import Example
from sluice.classifier.features import MAX_BODY_CHARS, to_row, topic_text
from sluice.classifier.model import Classifier
from sluice.classifier.scoring import TextPart, TopicPart, _text, sublinear_tf
from sluice.classifier.topics import TopicSpace
from sluice.core.mail import Mail
from sluice.core.parse import parse

#: Corpus messages compared (a few hundred: ~2 s).
SAMPLE = 400


@pytest.fixture(scope="module")
def mails(examples: list[Example]) -> list[Mail]:
    chosen = random.Random(3).sample(examples, min(SAMPLE, len(examples)))
    return [parse(example.raw) for example in chosen]


def _normalised(body: str) -> str:
    return body.replace("\r\n", "\n").replace("\r", "\n")


def test_cleaning_finds_what_the_full_patterns_find(mails: list[Mail]) -> None:
    found = 0
    for mail in mails:
        text = _normalised(mail.text[:MAX_BODY_CHARS])
        full = textclean._QUOTE_START.search(text)
        fast = textclean._quote_start(text)
        assert (fast.span() if fast else None) == (full.span() if full else None)
        assert textclean._forward_mark(text) == bool(textclean._FORWARD_MARK.search(text))
        assert textclean.clean(text) == _clean_plainly(text)
        found += full is not None
    assert found > SAMPLE // 10, "the sample should hold many quoted messages"


#: Pieces of the quote forms, and letters that re's IGNORECASE folds onto ASCII ones.
_PIECES = st.sampled_from([
    "-----Original Message-----", "---- Forwarded by Ann/HOU/ECT on 05/01/2001 10:02 AM",
    "-- Begin forwarded message", "_____ Reply Separator _____", "On Mon, Ann wrote:",
    "Ann Lee wrote:", "Bob schrieb:", "Eve a écrit:", "From: x\nSent: y", "To: a\ncc: b",
    "Ann Lee on 05/01/2001 10:02 AM", "Ann Lee\n  05/01/2001 10:02 PM", "wroTe:", "ſent",
    "\u212a", "WROTE:", "  ", "\n", "\n\n", "hello", "Subject: hi", "from: a\ndate: b",
    "> quoted", "| piped", "a|b", "\n-- \n", "Ann\n",
])


def _clean_plainly(body: str) -> textclean.CleanText:
    """`textclean.clean` with the full patterns and every line tested."""
    text = _normalised(body)
    start = textclean._QUOTE_START.search(text)
    head, quoted = (text[: start.start()], text[start.start():]) if start else (text, "")
    lines = head.split("\n")
    inline = [line for line in lines if textclean._QUOTED_LINE.match(line)]
    new, signature = textclean._cut_signature(
        "\n".join(line for line in lines if not textclean._QUOTED_LINE.match(line)))
    quoted_all = "\n".join(inline) + ("\n" + quoted if quoted else "")
    return textclean.CleanText(new.strip(), quoted_all.strip(), signature.strip(),
                               bool(textclean._FORWARD_MARK.search(text)))


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=12))
def test_quote_search_by_form_on_made_up_text(pieces: list[str]) -> None:
    text = "".join(pieces)
    full = textclean._QUOTE_START.search(text)
    fast = textclean._quote_start(text)
    assert (fast.span() if fast else None) == (full.span() if full else None)
    assert textclean._forward_mark(text) == bool(textclean._FORWARD_MARK.search(text))
    assert textclean.clean(text) == _clean_plainly(text)


def _keyword_counts_plainly(text: str) -> list[int]:
    counts = [0, 0, 0, 0, 0]
    words = features._WORD.findall(text)
    for word in words:
        if word in features._WORD_FAMILY:
            counts[features._WORD_FAMILY[word]] += 1
    for first, second in itertools.pairwise(words):
        family = features._PAIR_FAMILY.get(f"{first} {second}")
        if family is not None:
            counts[family] += 1
    return counts


def test_keyword_counts_match_a_loop_over_words(mails: list[Mail]) -> None:
    texts = [(mail.subject + "\n" + mail.text[:1500]).lower() for mail in mails]
    texts.append("can you please send the latest version? i think monday. let me know")
    for text in texts:
        assert features._keyword_counts(text) == _keyword_counts_plainly(text)
    assert features._keyword_counts(texts[-1]) == [3, 1, 1, 0, 1]


def _sklearn_vectorizer(part: TextPart) -> TfidfVectorizer:
    vectorizer = TfidfVectorizer(
        vocabulary=dict(part.vocabulary), token_pattern=part.token_pattern.pattern,
        ngram_range=(1, part.ngram_max), lowercase=part.lowercase,
        strip_accents="unicode" if part.strip_accents else None,
        sublinear_tf=part.sublinear, norm="l2", dtype=np.float64)
    vectorizer.idf_ = part.idf
    return vectorizer


def test_term_vectors_match_scikit_learn(default_classifier: Classifier,
                                         mails: list[Mail]) -> None:
    rows = [to_row(mail) for mail in mails]
    parts = [p for p in default_classifier._scorer.parts if isinstance(p, TextPart)]
    assert parts and any(p.pair_vocabulary is not None for p in parts)
    for part in parts:
        texts = [getattr(row, part.column) for row in rows]
        expected = _sklearn_vectorizer(part).transform(texts).tocsr()
        for i, text in enumerate(texts):
            found = _text(part, text)
            want = expected[i]
            if found is None:
                assert want.nnz == 0
                continue
            indices, values = found
            order = np.argsort(indices)
            np.testing.assert_array_equal(indices[order] - part.offset, np.sort(want.indices))
            wanted = want.toarray()[0][indices[order] - part.offset] * part.weight
            np.testing.assert_allclose(values[order], wanted, rtol=1e-12, atol=1e-15)


def test_one_at_a_time_and_many_agree(default_classifier: Classifier,
                                      mails: list[Mail]) -> None:
    one = [default_classifier.classify(mail) for mail in mails]
    assert default_classifier.classify_many(mails) == one
    assert len({v.category for v in one}) >= 5


def _topic_parts(classifier: Classifier) -> dict[str, TopicPart]:
    parts = {p.column: p for p in classifier._scorer.parts if isinstance(p, TopicPart)}
    assert set(parts) == {"topic", "quoted"}
    return parts


@pytest.mark.parametrize("column", ["topic", "quoted"])
def test_topic_features_match_scikit_learn(with_topics: Classifier,
                                           spaces: dict[str, TopicSpace],
                                           mails: list[Mail], column: str) -> None:
    """The direction features, with the words of subject, body and quoted text cut once for
    their own columns and the directions, are what `TopicSpace.transform` (scikit-learn's
    TF-IDF, then the SVD) gives."""
    part = _topic_parts(with_topics)[column]
    assert with_topics._scorer._shared == {"subject", "body", "quoted"}
    rows = [to_row(mail) for mail in mails]
    texts = [topic_text(row) if column == "topic" else row.quoted for row in rows]
    expected = spaces[column].transform(texts) * part.weight
    assert sum(bool(t.strip()) for t in texts) > SAMPLE // 4
    for row, want in zip(rows, expected, strict=True):
        indices, values = with_topics._scorer.vector(row)
        inside = (indices >= part.offset) & (indices < part.offset + len(part.names))
        shared = np.zeros(len(part.names))
        shared[indices[inside] - part.offset] = values[inside]
        np.testing.assert_allclose(shared, want, rtol=1e-9, atol=1e-12)
        alone = part.features(row)
        if alone is None:
            assert not want.any()
        else:
            np.testing.assert_allclose(alone[1], want, rtol=1e-9, atol=1e-12)


#: Pieces of subjects and bodies: accents, a final sigma, dotted capitals, digits, a newline.
_WORD_PIECES = st.sampled_from([
    "Meeting", "ΣΟΦΟΣ", "café", "naïve", "İstanbul", "straße", "x", "42", " ", "\n", "-",
    "re:", "a_b", "déjà vu", "\u00a0", "ﬁle", "Ⅻ",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(_WORD_PIECES, max_size=8), st.lists(_WORD_PIECES, max_size=12))
def test_topic_words_cut_apart_are_the_words_of_the_joined_text(
    with_topics: Classifier, subject: list[str], body: list[str]
) -> None:
    part = _topic_parts(with_topics)["topic"]
    row = features.Row("".join(subject), "".join(body), "", {})
    assert part.tokens(row) == part.text.tokens(topic_text(row))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.integers(1, 6), st.integers(1, 400)), min_size=1, max_size=300),
       st.integers(0, 7))
def test_sublinear_tf_from_the_table_is_numpys_log_bit_for_bit(counts: list[int],
                                                               skip: int) -> None:
    """Any length and any start (numpy's vector loops work in blocks): the same bits."""
    counts = counts[min(skip, len(counts) - 1):]
    wide = np.fromiter(counts, dtype=np.float64, count=len(counts))
    looked_up = sublinear_tf({i: c for i, c in enumerate(counts)}.values(), len(counts))
    np.testing.assert_array_equal(looked_up, 1.0 + np.log(wide))
    assert looked_up.tobytes() == (1.0 + np.log(wide)).tobytes()
