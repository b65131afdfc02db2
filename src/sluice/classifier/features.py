"""Turn a parsed `Mail` into the model's input: header facts plus the texts worth reading.

Header facts are numbers on a small scale (flags, log counts) so a linear model can weigh
them against word features without a scaler; each has a plain-words description in
`reasons.py`. Raw header names and values are never features: they carry where a corpus
came from (X-Folder, X-FileName) rather than what a message is for.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from sluice.classifier.textclean import clean
from sluice.core.mail import Mail

#: Body text past this adds words but no evidence (newsletters run to 100 KB); cut for speed.
MAX_BODY_CHARS = 20_000
#: The opening of the new text, where requests, greetings and hand-overs are said.
_HEAD_CHARS = 1500
#: Column order of the model's input rows (see `to_matrix`); "topic" is `topic_text`.
COLUMNS: tuple[str, ...] = ("subject", "body", "quoted", "headers", "topic")

_SYSTEM_SENDER = re.compile(
    r"^(?:no-?reply|do-?not-?reply|mailer-daemon|postmaster|notifications?|alerts?|news|"
    r"newsletters?|bounces?|daemon|root|admin|owner-|.*-(?:admin|owner|request|bounces)$|"
    r"system|auto|support|info|updates?|reports?|listserv|majordomo|mailman)",
    re.IGNORECASE,
)
#: Enron's stripped attachments (`<<file.doc>>`) and file names in the text (lowercased).
_FILE_REF = re.compile(r"<<[^<>\n]{1,120}\.\w{2,5}>>|\.(?:docx?|xlsx?|pptx?|pdf)\b")
_FWD_SUBJECT = re.compile(r"^\s*(?:\[[^\]]*\]\s*)?(?:fw|fwd|wg|tr)\s*:", re.IGNORECASE)
RE_SUBJECT = re.compile(r"^\s*(?:\[[^\]]*\]\s*)?(?:re|aw|sv|antw)\s*:", re.IGNORECASE)
_LIST_TAG = re.compile(r"^\s*(?:(?:re|fwd?)\s*:\s*)?\[[^\]]{1,40}\]", re.IGNORECASE)
#: Clock times in lowercased text: "10:30", "2 pm", "9am".
_TIME = re.compile(r"\d:\d\d|\d ?[ap]m\b")
#: Words, lowercased; the keyword features below look words and word pairs up in sets, one
#: pass over the text (a regex per keyword family costs ~50 µs each on a 4 KB message).
_WORD = re.compile(r"\w+")
#: A first line that is just a name ("Vince," "Hi Ann -"): the sender writes to a person.
#: (The tail is `\s*(?:[,:!-]+\s*)?`, not `\s*[,:!-]*\s*`: two runs of blanks that may
#: meet backtrack quadratically over a long line of spaces.)
_GREETING = re.compile(r"^\s*(?:(?i:hi|hello|dear|hey)\s+)?[A-Z][\w.'-]{1,20}"
                       r"(?:\s+[A-Z][\w.'-]{1,20})?\s*(?:[,:!-]+\s*)?$")
_DAY_WORDS = frozenset({"monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                        "sunday", "tomorrow"})
#: Asking someone to do something: "can you", "please send", "let me know", "i need".
_REQUEST_PAIRS = frozenset({"can you", "could you", "would you", "will you", "let me",
                            "i need", "do you", "are you", "please let", "please send",
                            "please call", "please review", "please advise", "please confirm"})
#: Handing over material: "attached is", "please find", "here is the", "latest version".
_MATERIAL_WORDS = frozenset({"attached", "attachment", "attachments", "enclosed", "attach"})
_MATERIAL_PAIRS = frozenset({"please find", "please see", "here is", "here are"} | {
    f"{a} {b}" for a in ("latest", "updated", "revised", "new", "final")
    for b in ("version", "draft", "copy", "deck", "presentation", "report")})
#: Saying what one thinks of something: comments, feedback, review, "i think", "looks good".
_OPINION_WORDS = frozenset({"comment", "comments", "feedback", "review", "reviewed", "suggest",
                            "suggestion", "suggestions", "concern", "concerns", "survey",
                            "rating"})
_OPINION_PAIRS = frozenset({"looks good", "look good", "looks fine", "i think", "i like",
                            "i liked", "i feel", "i found", "i agree", "i disagree"})
#: Meeting and scheduling words.
_MEETING_WORDS = frozenset({"meet", "meeting", "agenda", "invite", "invitation", "schedule",
                            "scheduled", "scheduling", "reschedule", "rescheduled", "room",
                            "lunch", "dinner", "rsvp", "calendar", "attend"})
_MEETING_PAIRS = frozenset({"conference call", "call in", "dial in"})
#: A recipient address that is a group, not a person: a word of its local part (split at
#: ".", "_", "-", "+") is one of these ("dl-portland", "all_domestic", "team.ops"), or the
#: domain is a list host ("yahoogroups.com", "lists.example.org").
_GROUP_WORDS = frozenset({"dl", "all", "team", "teams", "list", "lists", "group", "groups",
                          "staff", "everyone", "everybody", "undisclosed", "distribution",
                          "announce", "announcements", "exchange", "members", "employees"})
_GROUP_DOMAIN = re.compile(r"(?:^|\.)(?:lists?|groups?|listserv|yahoogroups|egroups)\.")
_LOCAL_SPLIT = re.compile(r"[._+-]")
#: A distribution list counts as this many recipients (the guideline's "many people").
_GROUP_SIZE = 10


#: Word (pair) -> index of its family in `_keyword_counts`' answer.
_WORD_FAMILY: dict[str, int] = {
    **{w: 1 for w in _MATERIAL_WORDS}, **{w: 2 for w in _OPINION_WORDS},
    **{w: 3 for w in _MEETING_WORDS}, **{w: 4 for w in _DAY_WORDS},
}
_PAIR_FAMILY: dict[str, int] = {
    **{p: 0 for p in _REQUEST_PAIRS}, **{p: 1 for p in _MATERIAL_PAIRS},
    **{p: 2 for p in _OPINION_PAIRS}, **{p: 3 for p in _MEETING_PAIRS},
}

_PAIR_FIRSTS = frozenset(pair.partition(" ")[0] for pair in _PAIR_FAMILY)


#: Every ASCII character that `\w` does not match, to a space.
_ASCII_NON_WORD = str.maketrans({c: " " for c in range(128) if not _WORD.match(chr(c))})


def words(text: str) -> list[str]:
    """`_WORD.findall(text)`: the runs of word characters. ASCII text (most mail) is cut by
    `translate` and `split` instead, which find the same runs in a third of the time."""
    if text.isascii():
        return text.translate(_ASCII_NON_WORD).split()
    found: list[str] = _WORD.findall(text)
    return found


def _keyword_counts(text: str) -> list[int]:
    """[requests, material, opinion, meeting, day] word counts in lowercased `text`."""
    # Look-ups by map/compress and counting by Counter run in C: no Python loop per word.
    words_ = words(text)
    by_word = Counter(map(_WORD_FAMILY.get, words_))
    pairs = itertools.compress(itertools.pairwise(words_),
                               map(_PAIR_FIRSTS.__contains__, words_))
    by_pair = Counter(map(_PAIR_FAMILY.get, map(" ".join, pairs)))
    return [by_word[family] + by_pair[family] for family in range(5)]


_DOC_TYPES = {
    "doc": "document", "docx": "document", "rtf": "document", "odt": "document",
    "pdf": "pdf", "xls": "spreadsheet", "xlsx": "spreadsheet", "csv": "spreadsheet",
    "ppt": "presentation", "pptx": "presentation", "zip": "archive", "gz": "archive",
}


@dataclass(frozen=True, slots=True)
class Row:
    """One message as the model reads it."""

    subject: str
    body: str
    quoted: str
    headers: dict[str, float]


#: Addresses repeat from message to message (colleagues, lists): their facts are kept.
_ADDRESS_CACHE = 8192


@functools.lru_cache(maxsize=_ADDRESS_CACHE)
def _domain(address: str) -> str:
    """Registrable-ish domain: the last two labels, enough to tell colleagues from others."""
    host = address.rpartition("@")[2].strip(" >").lower()
    return ".".join(host.split(".")[-2:])


def _log(count: float) -> float:
    return math.log1p(max(count, 0.0))


#: For counts that cannot be negative (lengths, counts): `_log` without the call around it.
_log1p = math.log1p


#: The headers read here beyond `Mail`'s own fields, found in one pass over the headers.
_WANTED_HEADERS = frozenset({"bcc", "list-unsubscribe", "list-post"})


def _some_headers(mail: Mail) -> dict[str, str]:
    """First value of each of `_WANTED_HEADERS` present (lowercased names)."""
    found: dict[str, str] = {}
    for key, value in mail.headers:
        name = key.lower()
        if name in _WANTED_HEADERS and name not in found:
            found[name] = value
    return found


@functools.lru_cache(maxsize=_ADDRESS_CACHE)
def _is_group(address: str, list_domain: str) -> bool:
    """Does `address` look like a distribution list (see `_GROUP_WORDS`)?"""
    local, _, domain = address.lower().partition("@")
    if list_domain and (domain == list_domain or domain.endswith("." + list_domain)):
        return True
    if _GROUP_DOMAIN.search(domain):
        return True
    return any(word in _GROUP_WORDS for word in _LOCAL_SPLIT.split(local))


def _list_domain(list_id: str) -> str:
    """The domain part of a List-Id ("<dev.example.org>" -> "example.org"), or ""."""
    host = list_id.strip().strip("<>").lower()
    return ".".join(host.split(".")[-2:]) if host.count(".") >= 2 else ""


def _attachment_kind(filename: str, content_type: str) -> str:
    ext = filename.rpartition(".")[2].lower() if "." in filename else ""
    if ext in _DOC_TYPES:
        return _DOC_TYPES[ext]
    if content_type.startswith("image/"):
        return "image"
    if content_type == "message/rfc822":
        return "message"
    return "other"


def _groups(mail: Mail, recipients: set[str]) -> int:
    """How many of `recipients` look like distribution lists."""
    list_domain = _list_domain(mail.list_id) if mail.list_id else ""
    return sum(1 for r in recipients if _is_group(r, list_domain))


def readers(mail: Mail) -> int:
    """How many people read it: its To and Cc, a distribution list counting as `_GROUP_SIZE`."""
    recipients = set(mail.to) | set(mail.cc)
    return len(recipients) + _groups(mail, recipients) * (_GROUP_SIZE - 1)


def looks_automated(mail: Mail) -> bool:
    """List or bulk headers, Auto-Submitted, a null or system sender."""
    return bool(mail.list_id or mail.precedence in ("bulk", "junk", "list")
                or (mail.auto_submitted and mail.auto_submitted != "no")
                or not mail.from_addr or mail.envelope.mail_from == ""
                or _SYSTEM_SENDER.match(mail.from_addr.partition("@")[0]))


def is_reply(mail: Mail) -> bool:
    """`Re:` subject or In-Reply-To: what a gateway's records tell of a message's threading."""
    return bool(RE_SUBJECT.match(mail.subject) or mail.thread.in_reply_to)


def header_features(mail: Mail, new_text: str, quoted: str, forwarded: bool) -> dict[str, float]:
    """Facts about addressing, lists, automation, threading, attachments and length."""
    recipients = set(mail.to) | set(mail.cc)
    groups = _groups(mail, recipients)
    headers = _some_headers(mail)
    n_bcc = headers.get("bcc", "").count("@")
    sender_domain = _domain(mail.from_addr)
    internal = sum(1 for r in recipients if _domain(r) == sender_domain) if sender_domain else 0
    local = mail.from_addr.partition("@")[0]
    lowered = new_text.lower()
    head = (mail.subject + "\n" + lowered[:_HEAD_CHARS]).lower()
    requests, material, opinion, meeting, days = _keyword_counts(head)
    new_words = len(new_text.split())
    f: dict[str, float] = {
        "n_to": _log1p(len(mail.to)),
        "n_cc": _log1p(len(mail.cc)),
        "n_bcc": _log1p(n_bcc),
        "n_recipients": _log1p(len(recipients)),
        "one_recipient": float(len(recipients) == 1),
        "few_recipients": float(2 <= len(recipients) <= 3),
        "many_recipients": float(len(recipients) + groups * (_GROUP_SIZE - 1) >= 10),
        "group_recipient": float(groups > 0),
        "no_recipients": float(not recipients),
        "all_internal": float(bool(recipients) and internal == len(recipients)),
        "some_external": float(internal < len(recipients)),
        "sender_in_to": float(mail.from_addr in recipients),
        "system_sender": float(bool(_SYSTEM_SENDER.match(local)) or not mail.from_addr),
        "no_sender_name": float(not mail.from_name),
        "list_id": float(bool(mail.list_id)),
        "list_unsubscribe": float(bool(headers.get("list-unsubscribe"))),
        "list_post": float(bool(headers.get("list-post"))),
        "list_tag": float(bool(_LIST_TAG.match(mail.subject))),
        "precedence_bulk": float(mail.precedence in ("bulk", "junk")),
        "precedence_list": float(mail.precedence == "list"),
        "auto_submitted": float(bool(mail.auto_submitted) and mail.auto_submitted != "no"),
        "null_sender": float(mail.envelope.mail_from == ""),
        "re_subject": float(bool(RE_SUBJECT.match(mail.subject))),
        "fwd_subject": float(bool(_FWD_SUBJECT.match(mail.subject))),
        "reply_depth": _log(mail.thread.reply_depth),
        "in_reply_to": float(bool(mail.thread.in_reply_to or mail.thread.references)),
        "n_attachments": _log1p(len(mail.attachments)),
        "attachment_bytes": _log1p(sum(a.size for a in mail.attachments)) / 10.0,
        "file_refs": _log1p(len(_FILE_REF.findall(lowered))),
        "inline_images": float(mail.inline_images > 0),
        "calendar": float(bool(mail.calendar)),
        "calendar_request": float(any(c.method == "REQUEST" for c in mail.calendar)),
        "html": float(bool(mail.html)),
        "new_words": _log1p(new_words) / 3.0,
        "empty_new_text": float(not new_text.strip()),
        "quoted_words": _log1p(len(quoted.split())) / 3.0,
        "forwarded": float(forwarded),
        "questions": _log1p(new_text.count("?")),
        "urls": _log1p(lowered.count("http://") + lowered.count("https://")
                     + lowered.count("www.")),
        "date_words": _log1p(days + len(_TIME.findall(head))),
        "empty_subject": float(not mail.subject.strip()),
    }
    # A distribution list among the recipients means many readers, however few addresses.
    n = len(recipients) + groups * (_GROUP_SIZE - 1)
    replying = bool(f["re_subject"] or f["in_reply_to"] or quoted.strip())
    first_line = new_text.lstrip().split("\n", 1)[0] if new_text else ""
    f.update({
        "reply_to_one": float(replying and n <= 1),
        "reply_to_few": float(replying and 2 <= n <= 3),
        "reply_to_many": float(replying and n >= 4),
        "new_to_many": float(not replying and n >= 6),
        "short_new_text": float(0 < new_words <= 30),
        "greeting_name": float(bool(_GREETING.match(first_line))),
        "question_to_few": float("?" in head and n <= 3),
        "requests": _log1p(requests),
        "material_words": _log1p(material),
        "opinion_words": _log1p(opinion),
        "meeting_words": _log1p(meeting),
        "fyi": float(lowered[:40].lstrip().startswith("fyi") or "fyi" in head[:200]),
    })
    for attachment in mail.attachments:
        key = "attach_" + _attachment_kind(attachment.filename, attachment.content_type)
        f[key] = 1.0
    return f


def to_row(mail: Mail, history: dict[str, float] | None = None) -> Row:
    """The model's view of one message; `history`: its sender's facts (`history.py`)."""
    parts = clean(mail.text[:MAX_BODY_CHARS])
    headers = header_features(mail, parts.new, parts.quoted, parts.forwarded)
    if history:
        headers.update(history)
    return Row(
        subject=mail.thread.normalized_subject,
        body=parts.new,
        quoted=parts.quoted[:5000],
        headers=headers,
    )


def topic_text(row: Row) -> str:
    """What the word-use directions (`topics`) read: the subject and the new text."""
    return row.subject + "\n" + row.body


def to_matrix(rows: list[Row]) -> np.ndarray:
    """Rows as the object array the fitted ColumnTransformer expects (columns: COLUMNS)."""
    out = np.empty((len(rows), len(COLUMNS)), dtype=object)
    for i, row in enumerate(rows):
        out[i, 0] = row.subject
        out[i, 1] = row.body
        out[i, 2] = row.quoted
        out[i, 3] = row.headers
        out[i, 4] = topic_text(row)
    return out
