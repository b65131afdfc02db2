"""A real Matrix homeserver on loopback for the tests: Synapse from PyPI, in a virtual
environment of its own (`make synapse` builds `.venv-synapse`; its dependencies would clash
with Sluice's), SQLite, the client API on a free port of 127.0.0.1, no federation.

Users are made with Synapse's own `register_new_matrix_user` (shared secret); the tests
talk to it over its client-server API like any Matrix client would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
SERVER_NAME = "localhost"
START_TIMEOUT_S = 120.0


def synapse_python() -> Path | None:
    configured = os.environ.get("SLUICE_SYNAPSE_PYTHON")
    candidate = Path(configured) if configured else ROOT / ".venv-synapse" / "bin" / "python"
    return candidate if candidate.exists() else None


class SynapseServer:
    def __init__(self, python: Path) -> None:
        self.python = python
        self.root = Path(tempfile.mkdtemp(prefix="sluice-synapse-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.secret = uuid.uuid4().hex
        subprocess.run(
            [str(python), "-m", "synapse.app.homeserver", "--server-name", SERVER_NAME,
             "--config-path", str(self.root / "homeserver.yaml"), "--generate-config",
             "--report-stats=no", "--data-directory", str(self.root)],
            check=True, capture_output=True, cwd=self.root, timeout=120)
        (self.root / "overrides.yaml").write_text(json.dumps(self._overrides()))
        self.log = open(self.root / "stdout.log", "wb")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen(
            [str(python), "-m", "synapse.app.homeserver",
             "-c", str(self.root / "homeserver.yaml"), "-c", str(self.root / "overrides.yaml")],
            cwd=self.root, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            self._wait_until_up()
        except BaseException:
            self.stop()
            raise

    def _overrides(self) -> dict[str, Any]:
        """JSON is YAML: the second config file wins over the generated one."""
        plenty = {"per_second": 1000, "burst_count": 1000}
        return {
            "listeners": [{"port": self.port, "bind_addresses": ["127.0.0.1"], "type": "http",
                           "tls": False, "x_forwarded": False,
                           "resources": [{"names": ["client"], "compress": False}]}],
            "registration_shared_secret": self.secret,
            "enable_registration": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "federation_domain_whitelist": [],
            "presence": {"enabled": False},
            "url_preview_enabled": False,
            "rc_message": plenty, "rc_registration": plenty, "rc_joins": {"local": plenty},
            "rc_login": {"address": plenty, "account": plenty, "failed_attempts": plenty},
        }

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Synapse ended with {self.proc.returncode}: "
                                   f"{(self.root / 'stdout.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/_matrix/client/versions", timeout=2):
                    return
            except (OSError, urllib.error.URLError):
                time.sleep(0.3)
        raise TimeoutError(f"Synapse not answering on {self.url}")

    def register(self, user: str, password: str) -> None:
        script = self.python.parent / "register_new_matrix_user"
        subprocess.run([str(script), "-u", user, "-p", password, "--no-admin",
                        "-k", self.secret, self.url], check=True, capture_output=True,
                       timeout=60)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             token: str = "") -> dict[str, Any]:
        """One client-server API request; HTTP errors raise with Synapse's answer."""
        request = urllib.request.Request(
            f"{self.url}/_matrix/client/v3{path}", method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json",
                     **({"Authorization": f"Bearer {token}"} if token else {})})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return dict(json.loads(answer.read()))

    def login(self, user: str, password: str) -> str:
        reply = self.call("POST", "/login", {"type": "m.login.password", "password": password,
                                             "identifier": {"type": "m.id.user", "user": user}})
        return str(reply["access_token"])

    def messages(self, room_id: str, token: str) -> list[dict[str, Any]]:
        """The room's m.room.message events, oldest first."""
        room = urllib.parse.quote(room_id)
        reply = self.call("GET", f"/rooms/{room}/messages?dir=b&limit=50", token=token)
        return [event for event in reversed(reply["chunk"])
                if event.get("type") == "m.room.message"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def synapse() -> Iterator[SynapseServer]:
    python = synapse_python()
    if python is None:
        if os.environ.get("CI"):  # CI builds .venv-synapse (make test): missing is a failure
            raise FileNotFoundError("Synapse (make synapse builds .venv-synapse)")
        pytest.skip("needs Synapse: make synapse")
    server = SynapseServer(python)
    yield server
    server.stop()
