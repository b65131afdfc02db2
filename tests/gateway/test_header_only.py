"""Header-only mode: the gateway records no subject text, and threads still group."""

from __future__ import annotations

import smtplib
import sqlite3
from pathlib import Path

from tests.gateway.conftest import StartGateway
from tests.servers import SmtpSink

FIRST = (b"From: ann@example.com\r\nTo: bob@example.com\r\nSubject: Salary review 2027\r\n"
         b"Message-ID: <h1@example.com>\r\n\r\nconfidential\r\n")
REPLY = (b"From: bob@example.com\r\nTo: ann@example.com\r\nSubject: RE: Salary review 2027\r\n"
         b"Message-ID: <h2@example.com>\r\nIn-Reply-To: <h1@example.com>\r\n\r\nok\r\n")


def recorded(data_dir: Path) -> list[tuple[str | None, str]]:
    db = sqlite3.connect(data_dir / "sluice.db")
    try:
        return list(db.execute("select subject, thread_subject from message order by id"))
    finally:
        db.close()


def test_header_only_stores_no_subject(start_gateway: StartGateway, clean_sink: SmtpSink,
                                       tmp_path: Path) -> None:
    gw = start_gateway(upstream=clean_sink.address, header_only=True)
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        client.sendmail("ann@example.com", ["bob@example.com"], FIRST)
        client.sendmail("bob@example.com", ["ann@example.com"], REPLY)
    assert len(clean_sink.wait_for(2)) == 2
    rows = recorded(tmp_path / "data")
    assert [subject for subject, _ in rows] == [None, None]
    keys = {thread for _, thread in rows}
    assert len(keys) == 1  # the reply groups with its thread
    key = keys.pop()
    assert key.startswith("sha256:") and "salary" not in key.lower()
    for stored in (tmp_path / "data").glob("sluice.db*"):  # the database and its WAL
        assert b"Salary review" not in stored.read_bytes(), stored.name


def test_subjects_are_kept_by_default(start_gateway: StartGateway, clean_sink: SmtpSink,
                                      tmp_path: Path) -> None:
    gw = start_gateway(upstream=clean_sink.address)
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        client.sendmail("ann@example.com", ["bob@example.com"], FIRST)
    assert len(clean_sink.wait_for(1)) == 1
    assert recorded(tmp_path / "data") == [("Salary review 2027", "salary review 2027")]
