"""MAIL/RCPT addresses: the gateway's short cuts answer exactly as aiosmtpd parses them
and as aiosmtplib quotes them upstream."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiosmtpd.smtp import SMTP
from aiosmtplib.email import quote_address
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.gateway.protocol import GatewaySMTP
from sluice.gateway.relay import smtp_path

_ATEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-"
_LOCAL = st.lists(st.text(alphabet=_ATEXT, min_size=1, max_size=10), min_size=1,
                  max_size=3).map(".".join)
_DOMAIN = st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1,
                           max_size=10), min_size=1, max_size=3).map(".".join)
_REST = st.sampled_from(["", " SIZE=4096", " BODY=8BITMIME SMTPUTF8", "  NOTIFY=NEVER", " x",
                         " (a comment) SIZE=1", "\tSIZE=2 ", "(c)"])
_PATH = st.one_of(
    st.builds(lambda lp, d, r: f"<{lp}@{d}>{r}", _LOCAL, _DOMAIN, _REST),
    st.builds(lambda lp, d, r: f" <{lp}@{d}>{r}", _LOCAL, _DOMAIN, _REST),
    # Forms left to aiosmtpd's grammar.
    st.builds(lambda lp, d, r: f'<"{lp} x"@{d}>{r}', _LOCAL, _DOMAIN, _REST),
    st.builds(lambda lp, d, r: f"<@relay.example:{lp}@{d}>{r}", _LOCAL, _DOMAIN, _REST),
    st.builds(lambda lp, d: f"{lp}@{d}", _LOCAL, _DOMAIN),
    st.builds(lambda lp, d: f"<{lp}..x@{d}>", _LOCAL, _DOMAIN),
    st.builds(lambda lp: f"<{lp}@[127.0.0.1]>", _LOCAL),
    st.sampled_from(["<>", "<> SIZE=1", "", "<", "<a@b", "a@", "<@b>", "<a@b>>"]),
)


def _outcome(parse: Callable[[str], object], arg: str) -> object:
    """What a parser gives, or the kind of error it raises (aiosmtpd raises on some input)."""
    try:
        return parse(arg)
    except Exception as exc:
        return type(exc)


def _protocol(limit: int) -> GatewaySMTP:
    protocol = object.__new__(GatewaySMTP)  # only the parser is exercised, no session
    protocol.local_part_limit = limit
    return protocol


@pytest.mark.parametrize("limit", [0, 8])
@given(arg=_PATH)
@settings(max_examples=300, deadline=None)
def test_short_cut_answers_as_aiosmtpd(limit: int, arg: str) -> None:
    protocol = _protocol(limit)
    ours = _outcome(protocol._getaddr, arg)
    assert ours == _outcome(lambda a: SMTP._getaddr(protocol, a), arg)


_MAILBOX = st.one_of(
    st.builds(lambda lp, d: f"{lp}@{d}", _LOCAL, _DOMAIN),
    st.builds(lambda lp, d: f'"{lp} x"@{d}', _LOCAL, _DOMAIN),
    st.builds(lambda lp, d: f"Name <{lp}@{d}>", _LOCAL, _DOMAIN),
    st.builds(lambda lp, d: f"{lp}@{d} SIZE=1", _LOCAL, _DOMAIN),
    st.builds(lambda lp, d: f"{lp}@{d}>\\r\\nRCPT TO:<x@y", _LOCAL, _DOMAIN),
    st.builds(lambda lp, d: f"{lp}@[{d}]", _LOCAL, _DOMAIN),
    st.text(max_size=30),
)


@given(address=_MAILBOX)
@settings(max_examples=400, deadline=None)
def test_upstream_paths_are_quoted_as_aiosmtplib_quotes_them(address: str) -> None:
    assert _outcome(smtp_path, address) == _outcome(quote_address, address)
