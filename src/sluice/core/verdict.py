"""The classifier's answer for one message."""

from __future__ import annotations

from dataclasses import dataclass

#: The seven kinds of mail, in the order the labeling guideline decides them.
CATEGORIES: tuple[str, ...] = (
    "automated",
    "event",
    "feedback",
    "material",
    "broadcast",
    "discussion",
    "direct",
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What kind of mail a message is, how sure the model is, and why.

    `reasons` are short sentences a user understands ("sent to 23 people", "says
    'attached is the latest version'"), strongest first.
    """

    category: str
    confidence: float
    reasons: tuple[str, ...]
    model_version: str
