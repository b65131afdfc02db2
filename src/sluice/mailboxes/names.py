"""Folder names: IMAP's modified UTF-7 (RFC 3501 5.1.3), as IMAP servers and Maildir++ keep them.

Names that are not valid modified UTF-7 (8-bit bytes, broken `&…-` runs) are shown with the
offending bytes escaped instead of failing: a strange folder name must never end a run.
"""

from __future__ import annotations

from imapclient import imap_utf7


def display_name(raw: bytes) -> str:
    """The readable name of a folder given as the server (or the disk) spells it."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="backslashreplace")
    try:
        decoded = imap_utf7.decode(raw)
    except (ValueError, UnicodeError):
        return text
    if imap_utf7.encode(decoded) != raw or any(ord(c) < 32 for c in decoded):
        return text  # not valid modified UTF-7: show the name as spelled
    return str(decoded)


def wire_name(display: str) -> bytes:
    """The modified UTF-7 spelling of a folder name a person typed."""
    return bytes(imap_utf7.encode(display))


def is_chosen(display: str, raw: bytes, chosen: tuple[str, ...]) -> bool:
    """Whether `--folder` named this folder (by its readable or its wire name; INBOX in any
    case); no `--folder` means every folder."""
    if not chosen:
        return True
    for want in chosen:
        if want.upper() == "INBOX" and display.upper() == "INBOX":
            return True
        if want == display or raw in (wire_name(want), want.encode("utf-8", "surrogateescape")):
            return True
    return False
