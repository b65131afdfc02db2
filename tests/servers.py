"""Real servers on loopback for the tests: smtp-sink, the gateway, Postfix.

Each helper starts a real process or a real listener and cleans up after itself.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sluice.core.settings import Settings, load_settings
from sluice.gateway.pipeline import PipelineHook, deliver_everything
from sluice.gateway.server import Gateway

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
#: smtp-sink's own lines at the top of each dump, before the relayed message.
SINK_HEADER_PREFIXES = (b"X-Client-Addr:", b"X-Client-Proto:", b"X-Helo-Args:",
                        b"X-Mail-Args:", b"X-Rcpt-Args:")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 60.0,
                  proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until something listens; with `proc`, give up at once when that process ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"process exited with {proc.returncode}") from None
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port}")


def require_binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists()
                                  else None)
    if path is None:
        raise RuntimeError(f"{name} is not installed: run `make system-deps` (Debian packages)")
    return path


@dataclass
class SinkMessage:
    """One transaction as smtp-sink dumped it."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes  # the relayed message with LF line ends, smtp-sink's Received removed


def parse_sink_dump(data: bytes) -> SinkMessage:
    lines = data.split(b"\n")
    mail_from, rcpts = "", []
    i = 0
    while i < len(lines) and lines[i].startswith(SINK_HEADER_PREFIXES):
        key, _, value = lines[i].partition(b": ")
        if key == b"X-Mail-Args":
            mail_from = value.decode().split()[0].strip("<>")
        elif key == b"X-Rcpt-Args":
            rcpts.append(value.decode().split()[0].strip("<>"))
        i += 1
    # smtp-sink's own Received header and its continuation lines.
    if i < len(lines) and lines[i].startswith(b"Received:"):
        i += 1
        while i < len(lines) and lines[i][:1] in (b"\t", b" "):
            i += 1
    body = b"\n".join(lines[i:])
    if body.endswith(b"\n\n"):  # smtp-sink ends each dump with an empty line
        body = body[:-1]
    return SinkMessage(mail_from, rcpts, body)


class SmtpSink:
    """Postfix's smtp-sink, dumping each transaction to its own file."""

    def __init__(self, workdir: Path, *extra: str, lmtp: bool = False) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o777)  # smtp-sink drops privileges to nobody
        self.port = free_port()
        args = [require_binary("smtp-sink"), "-u", "nobody", "-d", f"{self.dir}/%Y%m%d%H%M%S.",
                "-m", "512", *extra]
        if lmtp:
            args.append("-L")
        args += [f"127.0.0.1:{self.port}", "256"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def clear(self) -> None:
        for path in self.dir.iterdir():
            path.unlink()

    def messages(self) -> list[SinkMessage]:
        return [parse_sink_dump(p.read_bytes()) for p in sorted(self.dir.iterdir())]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[SinkMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = list(self.dir.iterdir())
            if len(found) >= count:
                time.sleep(0.1)  # let the last file be written completely
                return self.messages()
            time.sleep(0.05)
        return self.messages()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class GatewayThread:
    """An in-process gateway on its own event loop thread, for blocking smtplib clients."""

    def __init__(self, settings: Settings,
                 hook: PipelineHook | None = deliver_everything) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.gateway: Gateway | None = None
        ready = threading.Event()
        self.error: BaseException | None = None

        async def start() -> None:
            self.gateway = Gateway(settings, hook)
            await self.gateway.start()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(start())
            except BaseException as exc:  # reported to the test thread
                self.error = exc
                ready.set()
                return
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(30)
        if self.error:
            raise self.error
        assert self.gateway is not None
        self.ports = self.gateway.bound_ports

    @property
    def port(self) -> int:
        return self.ports[0]

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def stop(self) -> None:
        if self.gateway is not None:
            self.call(self.gateway.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def gateway_settings(tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": tmp / "data", "listen": ["127.0.0.1:0"],
                              "hostname": "gw.test"}
    values.update(overrides)
    return load_settings(None, **values)


class GatewayProcess:
    """`sluice gateway` as a child process, for crash tests (SIGKILL) and the CLI."""

    def __init__(self, tmp: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.args = [sys.executable, "-m", "sluice.cli", "gateway", "--listen",
                     f"127.0.0.1:{self.port}", "--data-dir", str(tmp / "data"),
                     "--hostname", "gw.test", *args]
        self.env = {**os.environ, **(env or {})}
        self.log = tmp / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                         env=self.env)
        wait_for_port(self.port)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def iter_corpus_messages(limit: int) -> Iterator[Path]:
    count = 0
    for path in sorted((CORPUS / "spamassassin_ham").rglob("*")):
        if path.is_file():
            yield path
            count += 1
            if count >= limit:
                return


class HttpReceiver:
    """A local HTTP server standing in for a webhook or chat service: records each request
    and answers with `status` (change it to simulate an outage)."""

    def __init__(self) -> None:
        import http.server

        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.status = 200
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.requests.append((self.path, dict(self.headers.items()), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for(self, count: int, timeout: float = 30.0) -> list[tuple[str, dict[str, str],
                                                                       bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.requests)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
