"""The gateway's sender history: messages counted as they pass, the newest records counted
again when a gateway starts, and other nodes' messages counted by the catch-up."""

from __future__ import annotations

import math
import smtplib
import sqlite3
from pathlib import Path

import pytest

from sluice.classifier.history import Sent, subject_digest
from sluice.gateway.senders import RecordedHistory
from tests.gateway.conftest import StartGateway
from tests.pg import postgres, postgres_url  # noqa: F401  (fixtures)
from tests.servers import GatewayThread, SmtpSink, gateway_settings

ANN, BOB, CEM = "ann@corp.example", "bob@corp.example", "cem@corp.example"


def message(number: int, sender: str = ANN, to: str = BOB, subject: str = "Budget",
            extra: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <m{number}.{sender}@corp.example>\r\n{extra}\r\n"
            f"Text number {number}.\r\n").encode()


def send(gw: GatewayThread, *messages: tuple[str, str, bytes]) -> None:
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        for sender, to, raw in messages:
            client.sendmail(sender, [to], raw)


def probe(sender: str = ANN, to: str = BOB, *, header_only: bool = False) -> Sent:
    return Sent(key="probe", sender=sender, recipients=(to,), readers=1, reply=False,
                automated=False,
                subject=subject_digest("budget") if header_only else "budget")


def count(n: int) -> float:
    return math.log1p(n) / 3.0


@pytest.mark.parametrize("header_only", [False, True])
def test_a_restarted_gateway_remembers_who_wrote_to_whom(
        start_gateway: StartGateway, clean_sink: SmtpSink, tmp_path: Path,
        header_only: bool) -> None:
    """Also in header-only mode, where the records hold thread subjects as digests."""
    first = GatewayThread(gateway_settings(tmp_path, upstream=clean_sink.address,
                                           header_only=header_only), None)
    send(first, *[(ANN, BOB, message(n)) for n in range(3)],
         (BOB, ANN, message(9, BOB, ANN, "Re: Budget")),
         (CEM, BOB, message(5, CEM, BOB, "Weekly digest",
                            "List-Id: <digest.lists.example>\r\nCc: a@corp.example, "
                            "b@corp.example\r\n")))
    clean_sink.wait_for(5)
    assert first.gateway is not None and first.gateway.senders is not None
    live = first.gateway.senders.history.facts(probe(header_only=header_only))
    first.stop()
    db = sqlite3.connect(tmp_path / "data" / "sluice.db")
    rows = dict(db.execute("select header_from || ':' || readers, automated from message"))
    assert rows == {f"{ANN}:1": 0, f"{BOB}:1": 0, f"{CEM}:3": 1}
    db.close()

    second = start_gateway(hook=None, upstream=clean_sink.address, header_only=header_only)
    assert second.gateway is not None and second.gateway.senders is not None
    warmed = second.gateway.senders.history.facts(probe(header_only=header_only))
    assert warmed == live
    assert warmed["hist_known"] == count(3)
    assert warmed["hist_pair"] == count(3)
    assert warmed["hist_reciprocal"] == count(1)
    assert warmed["hist_same_subject"] == 1.0
    assert second.gateway.senders.history.facts(probe(CEM))["hist_auto"] == 1.0


def test_a_node_counts_what_another_node_relayed_and_its_own_only_once(
        clean_sink: SmtpSink, tmp_path: Path, postgres_url: str) -> None:  # noqa: F811
    nodes = [GatewayThread(gateway_settings(tmp_path / name, database_url=postgres_url,
                                            upstream=clean_sink.address), None)
             for name in ("one", "two")]
    try:
        one, two = nodes
        send(one, *[(ANN, BOB, message(n)) for n in range(2)])
        clean_sink.wait_for(2)

        def catch_up(node: GatewayThread) -> dict[str, float]:
            assert node.gateway is not None
            senders = node.gateway.senders
            assert isinstance(senders, RecordedHistory)

            async def run() -> dict[str, float]:
                assert node.gateway is not None
                sents, last = node.gateway._read_senders(senders)
                senders.count(sents, last)
                return senders.history.facts(probe())

            return node.call(run())

        assert catch_up(two)["hist_known"] == count(2)  # the other node's messages
        assert catch_up(one)["hist_known"] == count(2)  # its own, not counted again
        assert catch_up(two)["hist_known"] == count(2)  # nothing new since
    finally:
        for node in nodes:
            node.stop()
