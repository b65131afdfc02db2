"""The engine's guards: a PostgreSQL that accepts connections but never answers must give
the caller an error (→ 451 in the gateway), not hold it for the kernel's TCP time-out."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from sluice.core import db
from sluice.core.settings import Settings


def test_a_silent_postgresql_is_an_error_not_a_hang(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepted by the kernel, never answered
    port = listener.getsockname()[1]
    monkeypatch.setattr(db, "PG_CONNECT_TIMEOUT_S", 1)
    settings = Settings(data_dir=tmp_path,
                        database_url=f"postgresql+psycopg://sluice@127.0.0.1:{port}/sluice")
    outcome: list[BaseException | None] = []

    def connect() -> None:
        try:
            db.make_engine(settings)
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout=60)  # a bound on a hang, not a speed check
    listener.close()
    assert outcome, "make_engine still waiting on a database that never answers"
    assert isinstance(outcome[0], OperationalError)
