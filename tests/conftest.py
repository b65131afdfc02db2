"""Session-wide real servers; each test gets them in a clean state."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import SmtpSink


@pytest.fixture(scope="session")
def sink() -> Iterator[SmtpSink]:
    # Not under pytest's tmp dir: smtp-sink runs as nobody and cannot enter a 0700 folder.
    folder = Path(tempfile.mkdtemp(prefix="sluice-sink-"))
    folder.chmod(0o755)
    server = SmtpSink(folder / "dump")
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture()
def clean_sink(sink: SmtpSink) -> SmtpSink:
    sink.clear()
    return sink


@pytest.fixture()
def tmp(tmp_path: Path) -> Path:
    return tmp_path
