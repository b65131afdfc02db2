"""What a mail reply adds: its own text, without the quoted history below it.

A reply that joins a thread becomes a comment; the thread already shows what it quotes.
"""

from __future__ import annotations

import re

#: Lines that start the quoted original in the common mail clients.
_ATTRIBUTION = re.compile(
    r"^\s*(?:On\b.{0,200}\bwrote:|Am\b.{0,200}\bschrieb\b.{0,100}:|Le\b.{0,200}\ba écrit\s*:"
    r"|-{2,}\s*Original Message\s*-{2,}|-{2,}\s*Ursprüngliche Nachricht\s*-{2,}"
    r"|_{10,})\s*$",
    re.IGNORECASE,
)
_HEADER_BLOCK = re.compile(r"^\s*(?:From|Von|De)\s*:\s*\S", re.IGNORECASE)
_HEADER_FOLLOW = re.compile(r"^\s*(?:Sent|Date|Gesendet|Datum|Envoyé|To|An)\s*:", re.IGNORECASE)


def reply_text(text: str) -> str:
    """The part of a reply above its quoted original; the whole text when nothing is quoted."""
    lines = text.replace("\r\n", "\n").split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        if _ATTRIBUTION.match(line):
            break
        if _HEADER_BLOCK.match(line) and any(
                _HEADER_FOLLOW.match(following) for following in lines[index + 1:index + 4]):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line.rstrip())
    own = "\n".join(kept).strip()
    while "\n\n\n" in own:
        own = own.replace("\n\n\n", "\n\n")
    return own or text.strip()
