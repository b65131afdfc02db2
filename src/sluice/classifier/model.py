"""classify: Mail -> Verdict, with a calibrated confidence and the reasons behind it.

The gateway loads one `Classifier` at start-up and calls `classify` for every message,
from many threads at once: after loading, nothing in here is mutated (a `SenderHistory`
given to `classify` is the caller's, and is counted into).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from sluice.classifier import persist
from sluice.classifier.features import Row, to_row
from sluice.classifier.history import SenderHistory
from sluice.classifier.reasons import MAX_REASONS, describe
from sluice.classifier.scoring import LinearScorer, softmax
from sluice.core.mail import Mail
from sluice.core.verdict import Verdict

#: The model shipped with Sluice, trained on the labeled corpus (see docs/classifier.md): a
#: JSON model (`persist`), loaded with numpy alone, its cross-validated figures inside.
DEFAULT_MODEL = Path(__file__).resolve().parent / "model" / "default.json"
_DIRECT = "direct"
_EVENT = "event"
_AUTOMATED = "automated"
#: The header fact of a calendar invitation (`features.header_features`).
INVITATION_FACT = "calendar_request"


class Classifier:
    """A trained model ready to classify; cheap to call, safe to share between threads."""

    def __init__(self, bundle: persist.ModelBundle) -> None:
        self.bundle = bundle
        self.version = bundle.version
        self._scorer: LinearScorer = bundle.scorer
        self.classes = self._scorer.classes
        self._direct = self.classes.index(_DIRECT) if _DIRECT in self.classes else -1
        self._event = self.classes.index(_EVENT) if _EVENT in self.classes else -1
        self._automated = self.classes.index(_AUTOMATED) if _AUTOMATED in self.classes else -1

    @classmethod
    def load(cls, path: Path | str) -> Classifier:
        """Load a model file (JSON model, or skops with trusted types only; see `persist`)."""
        return cls(persist.load(Path(path)))

    @classmethod
    def load_default(cls) -> Classifier:
        return cls.load(DEFAULT_MODEL)

    def classify(self, mail: Mail, history: SenderHistory | None = None) -> Verdict:
        """With `history`, the sender's facts are read from it and `mail` is counted in it."""
        return self.verdict(self.row(mail, history))

    def classify_many(self, mails: Iterable[Mail], *, explain: bool = True) -> list[Verdict]:
        """`explain=False` leaves the reasons empty (they cost a sixth of the time): for
        callers that only count categories, like the mailbox analyzer."""
        return [self.verdict(to_row(mail), explain=explain) for mail in mails]

    @staticmethod
    def row(mail: Mail, history: SenderHistory | None = None) -> Row:
        """The model's input; the sender's facts from `history` (which then counts `mail`),
        found from the header facts already computed."""
        row = to_row(mail)
        if history is not None:
            row.headers.update(history.observe(mail, row.headers))
        return row

    def verdict(self, row: Row, *, explain: bool = True) -> Verdict:
        scorer = self._scorer
        indices, values = scorer.vector(row)
        rows = scorer.coef_by_feature[indices]
        proba = softmax(values @ rows + scorer.intercept)
        invitation = is_invitation(row)
        chosen = self.choose(proba, invitation=invitation)
        confidence = self.confidence(proba, chosen, invitation=invitation)
        if not explain:
            return Verdict(category=self.classes[chosen], confidence=confidence, reasons=(),
                           model_version=self.version)
        pushes = values * (rows[:, chosen] - scorer.coef_mean[indices])
        reasons: list[str] = []
        if invitation and chosen == self._event:
            reasons.append(describe("headers", INVITATION_FACT, row))
        for position in np.argsort(-pushes, kind="stable")[:3 * MAX_REASONS]:
            if pushes[position] <= 0 or len(reasons) >= MAX_REASONS:
                break
            column, name = self._scorer.feature(int(indices[position]))
            sentence = describe(column, name, row)
            if sentence not in reasons:
                reasons.append(sentence)
        return Verdict(
            category=self.classes[chosen],
            confidence=confidence,
            reasons=tuple(reasons),
            model_version=self.version,
        )

    def choose(self, proba: np.ndarray, *, invitation: bool = False) -> int:
        """Most probable class, except that enough doubt towards `direct` keeps it direct:
        `direct` whenever P(direct) >= direct_ratio x the top probability. A calendar
        invitation (`invitation`: a text/calendar part with METHOD:REQUEST) is `event` unless
        the model calls it `automated`: the labeling guideline puts event before every kind
        but automated, and the labeled corpus (2000-2002 mail) has no calendar part to learn
        it from."""
        top = int(np.argmax(proba))
        if invitation and self._event >= 0 and top != self._automated:
            return self._event
        if self._direct >= 0 and proba[self._direct] >= self.bundle.direct_ratio * proba[top]:
            return self._direct
        return top

    def confidence(self, proba: np.ndarray, chosen: int, *, invitation: bool = False) -> float:
        """P(chosen), except for an invitation made `event` by rule: then 1 - P(automated),
        the only kind the guideline puts before event (so a rule such as `category: event,
        min_confidence: 0.5` still takes it)."""
        if invitation and chosen == self._event and self._automated >= 0:
            return round(1.0 - float(proba[self._automated]), 4)
        return round(float(proba[chosen]), 4)

    def predict_proba(self, rows: list[Row]) -> np.ndarray:
        """Class probabilities for many rows (columns in `self.classes` order)."""
        if not rows:
            return np.zeros((0, len(self.classes)))
        return np.vstack([self._scorer.proba(row) for row in rows])

    def predict(self, rows: list[Row]) -> list[str]:
        return [self.classes[self.choose(p, invitation=is_invitation(row))]
                for p, row in zip(self.predict_proba(rows), rows, strict=True)]


def is_invitation(row: Row) -> bool:
    return bool(row.headers.get(INVITATION_FACT))
