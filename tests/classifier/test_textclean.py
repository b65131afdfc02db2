"""Text cleaning: new words stay, quoted replies, forwards and signatures go."""

from __future__ import annotations

from sluice.classifier.textclean import clean


def test_quoted_reply_lines_are_removed() -> None:
    parts = clean("I agree, ship it.\n\n> Should we ship on Monday?\n> Bob\n")
    assert parts.new == "I agree, ship it."
    assert "Should we ship" in parts.quoted


def test_outlook_original_message_block_is_quoted() -> None:
    parts = clean("Fine by me.\n\n-----Original Message-----\nFrom: Ann\nSent: Monday\nold text")
    assert parts.new == "Fine by me."
    assert "old text" in parts.quoted


def test_notes_forward_is_marked_and_quoted() -> None:
    body = ("FYI\n---------------------- Forwarded by Jeff Dasovich/NA/Enron on 08/29/2000 "
            "04:06 PM ---------------------------\nthe forwarded report")
    parts = clean(body)
    assert parts.forwarded
    assert parts.new == "FYI"
    assert "forwarded report" in parts.quoted


def test_wrote_line_starts_the_quote() -> None:
    parts = clean("Yes.\n\nOn Mon, 26 Aug 2002, Ann Smith wrote:\nAre you coming?")
    assert parts.new == "Yes."


def test_signature_after_dash_dash_is_cut() -> None:
    parts = clean("Can you call me?\n-- \nBob Smith\nACME Corp\n")
    assert parts.new == "Can you call me?"
    assert "ACME" in parts.signature


def test_text_without_markers_is_kept_whole() -> None:
    text = "Please send me the numbers for Q3 by Friday.\nThanks"
    assert clean(text).new == text
    assert clean(text).quoted == ""
