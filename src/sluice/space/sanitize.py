"""HTML mail made safe to show inside a page of the space (nh3), and plain text as HTML.

Two nh3 passes with a small rewrite between them:
1. clean the mail's HTML to a safe subset: no script/style/iframe/forms/svg/base/meta, no
   event handlers, no style attributes (no CSS tricks), links only http/https/mailto with
   rel="noopener noreferrer nofollow", relative URLs dropped;
2. rewrite images: remote ones (http/https) lose their `src` and keep it in
   `data-remote-src`, which the page loads only when the reader asks (no tracking pixels);
   `cid:` images point at the post's own authorised attachment URL or are dropped;
3. clean again with the final allow-list, so the rewrite can never add anything unsafe.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from html.parser import HTMLParser

import nh3

#: Tags a mail body may keep. Layout tables stay (mail uses them); everything interactive,
#: embedding or page-level (forms, iframes, svg, base, meta, link, style) is gone.
ALLOWED_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "col", "colgroup", "dd",
    "del", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img",
    "ins", "kbd", "li", "ol", "p", "pre", "q", "s", "small", "span", "strike", "strong",
    "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
})
#: Tags removed together with their content (not just unwrapped).
DROPPED_WITH_CONTENT = frozenset({"script", "style", "title", "head", "noscript", "template",
                                  "textarea", "select", "object", "iframe", "svg", "math"})
_CELL = {"align", "colspan", "rowspan", "valign"}
_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title"},
    "img": {"src", "alt", "width", "height", "title"},
    "td": _CELL, "th": _CELL, "table": {"align"}, "ol": {"start"},
    "blockquote": set(), "abbr": {"title"},
}
_FINAL_ATTRIBUTES = {**_ATTRIBUTES, "img": {"src", "alt", "width", "height", "title",
                                            "data-remote-src"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer nofollow"
REMOTE_SRC = "data-remote-src"
#: Image types shown inline from a message's own parts (never SVG: it can carry script).
INLINE_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})

#: Maps a cid: reference (without "cid:") to the URL the page may load it from, or None.
CidResolver = Callable[[str], str | None]


def _deny_relative(_url: str) -> None:
    return None


def _first_pass(markup: str) -> str:
    return nh3.clean(
        markup, tags=set(ALLOWED_TAGS), clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={k: set(v) for k, v in _ATTRIBUTES.items()}, strip_comments=True,
        link_rel=LINK_REL, url_schemes=set(URL_SCHEMES | {"cid"}), url_relative="deny",
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )


def _final_pass(markup: str, own_prefix: str) -> str:
    def only_own(url: str) -> str | None:
        return url if own_prefix and url.startswith(own_prefix) else None

    return nh3.clean(
        markup, tags=set(ALLOWED_TAGS), clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={k: set(v) for k, v in _FINAL_ATTRIBUTES.items()}, strip_comments=True,
        link_rel=LINK_REL, url_schemes=set(URL_SCHEMES), url_relative=only_own,
        set_tag_attribute_values={"a": {"target": "_blank"}},
        attribute_filter=_final_attribute_filter,
    )


def _final_attribute_filter(tag: str, attr: str, value: str) -> str | None:
    if tag == "img" and attr == REMOTE_SRC:
        return value if value.lower().startswith(("http://", "https://")) else None
    if tag == "a" and attr == "href" and value.lower().startswith("cid:"):
        return None
    return value


class _ImageRewriter(HTMLParser):
    """Re-serialises nh3's (well-formed) output, changing only <img src>."""

    def __init__(self, resolve_cid: CidResolver) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.resolve_cid = resolve_cid

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.out.append(self._tag(tag, attrs, closed=False))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.out.append(self._tag(tag, attrs, closed=True))

    def handle_endtag(self, tag: str) -> None:
        self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        self.out.append(html.escape(data, quote=False))

    def _tag(self, tag: str, attrs: list[tuple[str, str | None]], *, closed: bool) -> str:
        kept: list[tuple[str, str]] = []
        for name, value in attrs:
            if value is None:
                continue
            if tag == "img" and name == "src":
                lowered = value.lower()
                if lowered.startswith(("http://", "https://")):
                    kept.append((REMOTE_SRC, value))
                elif lowered.startswith("cid:"):
                    url = self.resolve_cid(value[4:])
                    if url:
                        kept.append(("src", url))
                continue
            kept.append((name, value))
        rendered = "".join(f' {name}="{html.escape(value, quote=True)}"' for name, value in kept)
        return f"<{tag}{rendered}{' /' if closed else ''}>"


def no_cid(_cid: str) -> None:
    return None


def sanitize_html(markup: str, resolve_cid: CidResolver = no_cid, own_prefix: str = "") -> str:
    """Safe HTML for a page. `own_prefix` is the only relative URL prefix the final pass lets
    through (the post's attachment URLs that `resolve_cid` produces)."""
    if not markup.strip():
        return ""
    rewriter = _ImageRewriter(resolve_cid)
    rewriter.feed(_first_pass(markup))
    rewriter.close()
    return _final_pass("".join(rewriter.out), own_prefix).strip()


def text_to_html(text: str) -> str:
    """Plain text as escaped HTML paragraphs; line breaks kept."""
    paragraphs = [p.strip("\n") for p in text.replace("\r\n", "\n").split("\n\n")]
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>"
                   for p in paragraphs if p.strip())


def cid_resolver(urls: Mapping[str, str]) -> CidResolver:
    """A resolver over Content-IDs (without angle brackets) → URLs."""
    def resolve(cid: str) -> str | None:
        return urls.get(cid.strip().strip("<>"))
    return resolve
