"""`excerpt` tidies only a prefix of a long text: it must give what tidying all of it gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.router.post import excerpt


def slow_excerpt(text: str, limit: int) -> str:
    """The definition: every line looked at."""
    lines = [line.rstrip() for line in text.splitlines() if not line.lstrip().startswith(">")]
    tidy = "\n".join(lines).strip()
    while "\n\n\n" in tidy:
        tidy = tidy.replace("\n\n\n", "\n\n")
    return tidy if len(tidy) <= limit else tidy[: limit - 1].rstrip() + "…"


_LINE = st.one_of(
    st.text(alphabet="ab >\t", max_size=12),
    st.sampled_from(["", " ", "> quoted", "  > quoted", "text", "\u2028", "\x0c"]))
_TEXT = st.lists(st.tuples(_LINE, st.sampled_from(["\n", "\r\n", "\r", "\n\n\n"])),
                 max_size=60).map(lambda parts: "".join(a + b for a, b in parts))


@settings(max_examples=400, deadline=None)
@given(_TEXT, st.integers(min_value=1, max_value=40))
def test_prefix_tidy_gives_the_same_excerpt(text: str, limit: int) -> None:
    assert excerpt(text, limit) == slow_excerpt(text, limit)


def test_long_message_is_cut_with_an_ellipsis() -> None:
    text = "> quoted line\n" * 500 + "".join(f"line {n}\n\n\n\n" for n in range(2000))
    assert excerpt(text) == slow_excerpt(text, 1200)
    assert excerpt(text).endswith("…") and "quoted" not in excerpt(text)
