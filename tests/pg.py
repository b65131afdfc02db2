"""A real PostgreSQL server on loopback for the tests: Debian's binaries, a cluster of its own
in a temporary folder, trust authentication on 127.0.0.1 only, a fresh database per test."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import free_port, wait_for_port

#: The server refuses to run as root; as root the cluster belongs to this system user.
SERVICE_USER = "postgres"


def find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    return str(candidates[0]) if candidates else None


class PostgresServer:
    def __init__(self) -> None:
        initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if not initdb or not pg_ctl:
            raise FileNotFoundError("PostgreSQL server binaries (Debian package postgresql)")
        self.pg_ctl = pg_ctl
        self.root = Path(tempfile.mkdtemp(prefix="sluice-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SERVICE_USER)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self.as_user = ["runuser", "-u", SERVICE_USER, "--"]
        self._run([initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust",
                   "-E", "UTF8", "--locale=C.UTF-8"])
        self.start_server()

    def start_server(self) -> None:
        """Start the cluster (again, after `stop_server`) on the same port and data; a
        server already running is left alone."""
        if self.running():
            return
        self._run([self.pg_ctl, "-D", str(self.data), "-l", str(self.root / "server.log"),
                   "-w", "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 "
                               f"-c unix_socket_directories={self.root} -c fsync=on "
                               "-c synchronous_commit=on -c max_connections=200", "start"])
        wait_for_port(self.port)

    def running(self) -> bool:
        status = subprocess.run([*self.as_user, self.pg_ctl, "-D", str(self.data), "status"],
                                capture_output=True, timeout=30, check=False)
        return status.returncode == 0

    def stop_server(self) -> None:
        """Stop the server as an operator's restart does (fast: open sessions are ended,
        committed data stays); the cluster is kept for `start_server`."""
        self._run([self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def _run(self, args: list[str]) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=120)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        subprocess.run([*self.as_user, self.pg_ctl, "-D", str(self.data), "-m", "fast",
                        "-w", "stop"], capture_output=True, timeout=60, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer()
    except FileNotFoundError as exc:
        if os.environ.get("CI"):  # CI installs PostgreSQL: missing there is a failure
            raise
        pytest.skip(f"needs {exc}")
    yield server
    server.stop()


@pytest.fixture()
def postgres_url(postgres: PostgresServer) -> str:
    return postgres.new_database()
