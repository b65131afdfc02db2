"""Say in plain words which features pushed a verdict: "sent to 23 people", not "n_to=3.17".

Each header feature has a sentence; word features name the word and where it was found.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from sluice.classifier.features import Row

#: How many reasons a verdict carries at most.
MAX_REASONS = 3


def _count(value: float) -> int:
    return round(math.expm1(value))


def _people(n: int) -> str:
    return "1 person" if n == 1 else f"{n} people"


_HEADER_WORDS: dict[str, Callable[[float], str]] = {
    "n_to": lambda v: f"addressed to {_people(_count(v))}",
    "n_cc": lambda v: f"copied to {_people(_count(v))}",
    "n_bcc": lambda v: f"blind-copied to {_people(_count(v))}",
    "n_recipients": lambda v: f"sent to {_people(_count(v))}",
    "one_recipient": lambda v: "sent to one person only",
    "few_recipients": lambda v: "sent to two or three people",
    "many_recipients": lambda v: "sent to ten people or more",
    "no_recipients": lambda v: "no visible recipients (undisclosed or Bcc only)",
    "all_internal": lambda v: "all recipients are in the sender's organisation",
    "some_external": lambda v: "goes to people outside the sender's organisation",
    "sender_in_to": lambda v: "the sender sent it to themselves too",
    "system_sender": lambda v: "the sender address looks like a system (no-reply, admin, news…)",
    "no_sender_name": lambda v: "the sender has no display name",
    "list_id": lambda v: "came through a mailing list (List-Id header)",
    "list_unsubscribe": lambda v: "has an unsubscribe link (List-Unsubscribe header)",
    "list_post": lambda v: "posted to a discussion list (List-Post header)",
    "list_tag": lambda v: "the subject carries a [list] tag",
    "precedence_bulk": lambda v: "marked as bulk mail (Precedence header)",
    "precedence_list": lambda v: "marked as list mail (Precedence header)",
    "auto_submitted": lambda v: "marked as sent automatically (Auto-Submitted header)",
    "null_sender": lambda v: "has no return address (a bounce or system notice)",
    "re_subject": lambda v: "the subject starts with Re: (a reply)",
    "fwd_subject": lambda v: "the subject starts with Fwd: (forwarded)",
    "reply_depth": lambda v: f"is reply number {_count(v)} in its thread",
    "in_reply_to": lambda v: "answers an earlier message (In-Reply-To/References)",
    "n_attachments": lambda v: f"carries {_count(v)} attachment(s)",
    "attachment_bytes": lambda v: "has sizeable attachments",
    "file_refs": lambda v: "mentions an attached file by name",
    "inline_images": lambda v: "has inline images (logos, banners)",
    "calendar": lambda v: "contains a calendar entry",
    "calendar_request": lambda v: "contains a meeting invitation",
    "html": lambda v: "is formatted HTML mail",
    "new_words": lambda v: f"has about {_count(v * 3.0)} words of new text",
    "empty_new_text": lambda v: "adds no text of its own",
    "quoted_words": lambda v: f"quotes or forwards about {_count(v * 3.0)} words",
    "forwarded": lambda v: "forwards an earlier message",
    "questions": lambda v: "asks questions",
    "urls": lambda v: "contains links",
    "date_words": lambda v: "names days or times",
    "empty_subject": lambda v: "has no subject",
    "reply_to_one": lambda v: "a reply to one person",
    "reply_to_few": lambda v: "a reply to two or three people",
    "reply_to_many": lambda v: "a reply to four people or more (reply-all)",
    "new_to_many": lambda v: "a new message to six people or more",
    "short_new_text": lambda v: "a short note",
    "greeting_name": lambda v: "opens by addressing someone by name",
    "question_to_few": lambda v: "asks a question of one to three people",
    "requests": lambda v: "asks someone to do something (can you…, please…, let me know)",
    "material_words": lambda v: "hands over material (attached, here is, revised draft)",
    "opinion_words": lambda v: "gives an opinion or comments",
    "meeting_words": lambda v: "talks about meeting, scheduling or attending",
    "fyi": lambda v: "says FYI",
    "group_recipient": lambda v: "goes to a distribution list (team, all, dl-…)",
    # The sender's history (history.py): what the gateway saw them send before.
    "hist_known": lambda v: f"the sender has sent {_count(v * 3.0)} messages before",
    "hist_many": lambda v: f"the sender writes to six people or more in {v:.0%} of their mail",
    "hist_one": lambda v: f"the sender writes to one person in {v:.0%} of their mail",
    "hist_reply": lambda v: f"{v:.0%} of the sender's mail are replies",
    "hist_auto": lambda v: f"{v:.0%} of the sender's mail came from a list or a system",
    "hist_same_subject": lambda v: "the sender has sent mail with this subject before",
    "hist_pair": lambda v: f"the sender has written to these recipients {_count(v * 3.0)} "
                           "times before",
    "hist_reciprocal": lambda v: f"these recipients have written to the sender "
                                 f"{_count(v * 3.0)} times before",
}
_ATTACHMENT_PREFIX = "attach_"
_TEXT_PLACES = {
    "subject": "the subject says “{}”",
    "body": "the text says “{}”",
    "quoted": "the quoted or forwarded text says “{}”",
}


#: The word-use directions (`topics`) have no words of their own to name.
_TOPIC_WORDS = "its wording as a whole reads like such mail"
_QUOTED_TOPIC = "quoted text, direction "
_QUOTED_TOPIC_WORDS = "the quoted or forwarded text as a whole reads like such mail"


def describe(column: str, feature: str, row: Row) -> str:
    """One feature of one message in words; `column` is the input column it came from."""
    if column == "topic":
        return _TOPIC_WORDS
    if column == "quoted" and feature.startswith(_QUOTED_TOPIC):
        return _QUOTED_TOPIC_WORDS
    if column in _TEXT_PLACES:
        return _TEXT_PLACES[column].format(feature)
    if feature.startswith(_ATTACHMENT_PREFIX):
        return f"has a{'n' if feature[7:8] in 'aeiou' else ''} {feature[7:]} attached"
    value = row.headers.get(feature, 0.0)
    words = _HEADER_WORDS.get(feature)
    return words(value) if words else feature.replace("_", " ")
