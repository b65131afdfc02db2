"""Split a body into what the sender wrote now and what they quoted, forwarded or signed.

The words a sender writes in this message say what it is for; a long quoted thread below
them says mostly what earlier messages were for. So the model reads the new text, and only
counts how much was quoted or forwarded.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

#: Lines that start a quoted or forwarded block: everything below them is not new text.
#: Each form comes with the strings (lowercase) of which a line it matches holds at least
#: one, or None when that is not a plain string (see `_quote_start`).
_QUOTE_FORMS: tuple[tuple[str, tuple[str, ...] | None], ...] = (
    (r"-{2,}\s*original\s+message\s*-{2,}", ("original",)),                  # Outlook
    (r"-{3,}\s*forwarded\s+by\b.*", ("forwarded",)),                         # Lotus Notes
    (r"-{2,}\s*(?:begin\s+)?forwarded\s+message\b.*", ("forwarded",)),
    (r"_{5,}\s*reply\s+separator\s*_{5,}", ("separator",)),
    (r"on\s.{1,200}\bwrote:\s*$", ("wrote:",)),                               # "On X wrote:"
    (r".{1,120}\s(?:wrote|writes|schrieb|a\s+écrit):\s*$",
     ("wrote:", "writes:", "schrieb:", "crit:")),
    (r"from:\s.+\r?\n\s*(?:sent|date):\s.+", ("from:",)),                   # Outlook headers
    (r"\S.{0,80}\son\s\d{1,2}/\d{1,2}/\d{2,4}\s\d{1,2}:\d{2}(?::\d{2})?\s*[ap]m\s*$",
     None),                                                                  # Notes
    # Notes: NAME, then DATE TIME on its own line
    (r"\S[^\n]{0,80}\n[ \t]*\d{1,2}/\d{1,2}/\d{2,4}[ \t]+\d{1,2}:\d{2}(?::\d{2})?[ \t]*[ap]m"
     r"[ \t]*$", None),
    (r"to:[^\n]*\n(?:[^\n]*\n){0,3}?[ \t]*(?:cc|subject):", ("to:",)),        # To:/cc: block
)
_QUOTE_FLAGS = re.IGNORECASE | re.MULTILINE


#: Leading blanks are `[^\S\n]*`, not `\s*`: under MULTILINE, `^\s*` at every line start runs
#: over all the blank lines below it (20,000 empty lines took 40 s).
@functools.cache
def _quote_pattern(forms: tuple[int, ...]) -> re.Pattern[str]:
    """The quote-start pattern of some forms (at most 2^10 sets of them, compiled once)."""
    return re.compile(r"^[^\S\n]*(?:" + "|".join(_QUOTE_FORMS[i][0] for i in forms) + ")",
                      _QUOTE_FLAGS)


_QUOTE_START = _quote_pattern(tuple(range(len(_QUOTE_FORMS))))
#: Both Notes forms hold a date and time "d/d/d d:dd am" from the date's first "/" on (the
#: same classes and flags as theirs, looser); starting at "/" lets re skip ahead to each
#: slash instead of trying every position.
_NOTES_DATE = re.compile(r"/\d{1,2}/\d{2,4}\s+\d{1,2}:\d{2}(?::\d{2})?\s*[ap]m", _QUOTE_FLAGS)
_FORWARD_MARK = re.compile(
    r"^[^\S\n]*-{2,}\s*(?:(?:begin\s+)?forwarded\s+(?:by|message)|original\s+message)",
    _QUOTE_FLAGS,
)
_FORWARD_NEEDLES = ("forwarded", "original")


def _quote_start(text: str) -> re.Match[str] | None:
    """`_QUOTE_START.search(text)`, cheaper.

    Searching for all forms at every line start costs ~300 µs on a 4 KB message, most of it
    the "X wrote:" form trying 120 characters at each line. A form can match at some place
    only if the text holds one of its strings; the leftmost place where the full pattern
    matches is the leftmost place where one of its forms does, so searching with only the
    forms whose strings are present finds the same match. The strings are compared with
    the text lowercased, which equals IGNORECASE matching for ASCII text only (re also folds
    a few other letters, such as "\u017f" to "s"), so other text takes the full pattern.
    """
    if not text.isascii():
        return _QUOTE_START.search(text)
    lowered = text.lower()
    forms = tuple(
        i for i, (_, needles) in enumerate(_QUOTE_FORMS)
        if (any(needle in lowered for needle in needles) if needles is not None
            else _NOTES_DATE.search(text) is not None)
    )
    if not forms:
        return None
    return _quote_pattern(forms).search(text)


def _forward_mark(text: str) -> bool:
    """`_FORWARD_MARK.search(text)` as a bool; skipped when none of its words is present
    (ASCII text only, as in `_quote_start`)."""
    if text.isascii():
        lowered = text.lower()
        if not any(needle in lowered for needle in _FORWARD_NEEDLES):
            return False
    return _FORWARD_MARK.search(text) is not None


#: "-- " on its own line (RFC 3676), or the mailing-list footer rule of underscores.
_SIGNATURE = re.compile(r"^(?:--\s?|_{20,}|-{20,})$", re.MULTILINE)
_QUOTED_LINE = re.compile(r"^\s*(?:>|\|\s)", re.MULTILINE)
#: A signature longer than this is probably not a signature but a section rule.
_MAX_SIGNATURE_LINES = 15


@dataclass(frozen=True, slots=True)
class CleanText:
    """The body split by who wrote it and when."""

    new: str
    quoted: str
    signature: str
    forwarded: bool


def _cut_signature(text: str) -> tuple[str, str]:
    matches = list(_SIGNATURE.finditer(text))
    if not matches:
        return text, ""
    last = matches[-1]
    tail = text[last.end():]
    if tail.count("\n") > _MAX_SIGNATURE_LINES or not text[: last.start()].strip():
        return text, ""
    return text[: last.start()], tail


def clean(body: str) -> CleanText:
    """Separate new text, quoted/forwarded text and signature; never raises."""
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    forwarded = _forward_mark(text)
    start = _quote_start(text)
    head, quoted = (text[: start.start()], text[start.start():]) if start else (text, "")
    kept_text, inline_text = head, ""
    if ">" in head or "|" in head:  # else no line is a quoted one: all are kept, as they are
        kept: list[str] = []
        inline_quotes: list[str] = []
        for line in head.split("\n"):
            (inline_quotes if _QUOTED_LINE.match(line) else kept).append(line)
        kept_text, inline_text = "\n".join(kept), "\n".join(inline_quotes)
    new, signature = _cut_signature(kept_text)
    quoted_all = inline_text + ("\n" + quoted if quoted else "")
    return CleanText(
        new=new.strip(), quoted=quoted_all.strip(), signature=signature.strip(), forwarded=forwarded
    )
