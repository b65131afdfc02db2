"""Header facts the guideline decides by: a distribution list counts as many recipients."""

from __future__ import annotations

import pytest

from sluice.classifier.features import to_row
from sluice.core.parse import parse


def _headers(to: str, cc: str = "", extra: str = "") -> dict[str, float]:
    raw = (f"From: ann@example.com\r\nTo: {to}\r\n" + (f"Cc: {cc}\r\n" if cc else "")
           + extra + "Subject: Re: Q3 numbers\r\n\r\nThanks, that helps.\r\n").encode()
    return to_row(parse(raw)).headers


@pytest.mark.parametrize("address", [
    "dl-portland@example.com", "center.dl-portland@example.com", "sales-team@example.com",
    "all_domestic@example.com", "staff@example.com", "everyone@example.com",
    "undisclosed-recipients@example.com", "neighbours@yahoogroups.com",
    "dev@lists.example.org",
])
def test_a_distribution_list_counts_as_many_recipients(address: str) -> None:
    headers = _headers(address)
    assert headers.get("group_recipient") == 1.0
    assert headers.get("many_recipients") == 1.0
    assert headers.get("reply_to_many") == 1.0
    assert not headers.get("reply_to_one")


@pytest.mark.parametrize("address", [
    "bob@example.com", "allan.smith@example.com", "teamster@example.com",
    "listening@example.com",
])
def test_a_person_is_one_recipient(address: str) -> None:
    headers = _headers(address)
    assert not headers.get("group_recipient")
    assert not headers.get("many_recipients")
    assert headers.get("reply_to_one") == 1.0


def test_an_address_in_the_list_id_domain_is_the_list() -> None:
    headers = _headers("dev@example.org", extra="List-Id: Developers <dev.example.org>\r\n")
    assert headers.get("group_recipient") == 1.0
    assert not _headers("dev@example.org").get("group_recipient")
