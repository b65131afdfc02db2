from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sluice.gateway.pipeline import deliver_everything
from tests.postfix import REJECTED_ON_REINJECTION, PostfixInstance, PostfixMissing
from tests.servers import GatewayThread, SmtpSink, gateway_settings

StartGateway = Callable[..., GatewayThread]


@pytest.fixture()
def start_gateway(tmp_path: Path) -> Iterator[StartGateway]:
    """Start an in-process gateway with settings overrides; stopped after the test."""
    started: list[GatewayThread] = []

    def start(hook: Any = deliver_everything, **overrides: Any) -> GatewayThread:
        """hook=None: the production pipeline (classifier and rules from the settings)."""
        settings = gateway_settings(tmp_path, **overrides)
        gw = GatewayThread(settings, hook)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()


@pytest.fixture()
def relay(start_gateway: StartGateway, clean_sink: SmtpSink) -> GatewayThread:
    """A gateway relaying to the session's smtp-sink."""
    return start_gateway(upstream=clean_sink.address)


@pytest.fixture(scope="session")
def postfix(sink: SmtpSink) -> Iterator[PostfixInstance]:
    """A real Postfix on loopback ports relaying to the session's smtp-sink; its re-injection
    port refuses `REJECTED_ON_REINJECTION`."""
    try:
        instance = PostfixInstance(sink.address, reject_on_reinjection=(REJECTED_ON_REINJECTION,))
    except PostfixMissing as exc:
        pytest.fail(f"Postfix is needed for the @pytest.mark.postfix tests: {exc}")
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


@pytest.fixture()
def clean_postfix(postfix: PostfixInstance, clean_sink: SmtpSink) -> PostfixInstance:
    """The session's Postfix with an empty queue, mailbox and log, and an empty sink."""
    postfix.reset()
    return postfix


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=gw.test", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key
