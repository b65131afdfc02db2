"""HTML mail to plain text for classification and search; never executes or fetches anything."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCK_TAGS = frozenset(
    ["p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote",
     "pre", "hr", "section", "article", "header", "footer"]
)
_SKIP_TAGS = frozenset(("script", "style", "head", "title"))

#: Markup openers and what closes each, as HTMLParser looks for them. For an opener with no
#: closer anywhere after it, HTMLParser rescans the whole rest of the document at every such
#: opener when it is closed: quadratic time (60 KB of "<a " took two minutes). Longest
#: opener first: the first that fits decides.
_OPENERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("<!--", re.compile(r"--\s*>")),
    ("<![", re.compile(r"]\s*>")),
    ("<", re.compile(">")),
)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS and self._skip:
            self._skip -= 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _defuse(html: str) -> str:
    """Every opener that nothing after it can close becomes text ("&lt;"), which is what
    HTMLParser makes of it in the end; done once here, in linear time."""
    last_close = {opener: -1 for opener, _ in _OPENERS}
    for opener, closer in _OPENERS:
        for match in closer.finditer(html):
            last_close[opener] = match.start()
    if all(html.rfind(opener) + len(opener) <= last_close[opener] for opener, _ in _OPENERS):
        return html  # everything can be closed: the common case, untouched

    def replace(match: re.Match[str]) -> str:
        start = match.start()
        for opener, _ in _OPENERS:
            if html.startswith(opener, start):
                return "&lt;" if last_close[opener] <= start + len(opener) - 1 else "<"
        return "<"

    return re.sub("<", replace, html)


def html_to_text(html: str) -> str:
    """Visible text with block breaks as new lines; linear in the size of the markup."""
    if not html:
        return ""
    html = _defuse(html)
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # malformed markup: keep what was extracted so far
        pass
    text = "".join(parser.parts)
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    return re.sub(r"\n\s*\n+", "\n\n", text).strip()
