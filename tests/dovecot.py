"""A real Dovecot IMAP server on loopback for the analyzer and `sluice watch` tests.

Debian's dovecot runs as its own instance: config, base_dir, state, logs and mail all in one
mkdtemp folder, listening on 127.0.0.1 at free ports. The master must start as root (it
drops privileges itself); the test user's mail belongs to `nobody`, so every folder the
test writes is handed to that uid (`Dovecot.chown`). With `tls=True` an imaps listener with
a self-signed certificate (made by openssl) is opened as well; `ca_file` trusts it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from tests.servers import free_port, require_binary, wait_for_port

USER = "analyst"
PASSWORD = "s3cret-imap-pass"
#: The uid/gid the test user's mail belongs to (dovecot refuses to serve mail as root).
MAIL_OWNER = "nobody"

_CONFIG = """\
base_dir = {base}/run
state_dir = {base}/state
instance_name = sluice-test-{port}
protocols = imap
listen = 127.0.0.1
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.log
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
last_valid_uid = 0
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{base}/mail/%u
mail_privileged_group =
ssl = {ssl}
{ssl_files}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {base}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
protocol imap {{
  mail_max_userip_connections = 50
}}
"""


class Dovecot:
    """One dovecot instance with one user (`USER`/`PASSWORD`) and a maildir to fill."""

    def __init__(self, *, tls: bool = False) -> None:
        self.binary = require_binary("dovecot")
        self.base = Path(tempfile.mkdtemp(prefix="sluice-dovecot-"))
        self.base.chmod(0o755)
        self.port = free_port()
        self.imaps_port = free_port() if tls else 0  # port 0: no imaps listener
        self.tls = tls
        owner = pwd.getpwnam(MAIL_OWNER)
        self.uid, self.gid = owner.pw_uid, owner.pw_gid
        self.maildir = self.base / "mail" / USER
        self.ca_file = self.base / "cert.pem"
        (self.base / "mail").mkdir()
        self.maildir.mkdir()
        for sub in ("cur", "new", "tmp"):
            (self.maildir / sub).mkdir()
        self.chown()
        (self.base / "passwd").write_text(
            f"{USER}:{{PLAIN}}{PASSWORD}:{self.uid}:{self.gid}::{self.maildir}::\n")
        ssl_files = ""
        if tls:
            key = self.base / "key.pem"
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                 "-keyout", str(key), "-out", str(self.ca_file)],
                check=True, capture_output=True)
            ssl_files = f"ssl_cert = <{self.ca_file}\nssl_key = <{key}"
        self.config = self.base / "dovecot.conf"
        self.config.write_text(_CONFIG.format(
            base=self.base, port=self.port, imaps_port=self.imaps_port,
            ssl="yes" if tls else "no", ssl_files=ssl_files))
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "-F", "-c", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(self.port, timeout=30)
            if self.tls:
                wait_for_port(self.imaps_port, timeout=30)
        except TimeoutError as exc:
            raise RuntimeError(f"dovecot did not start:\n{self.log()}") from exc

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        # The master's children leave with it; wait until the port is free again.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _listening(self.port):
            time.sleep(0.05)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def log(self) -> str:
        path = self.base / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else "(no log)"

    def url(self, folder: str = "", *, tls: bool = False) -> str:
        scheme, port = ("imaps", self.imaps_port) if tls else ("imap", self.port)
        return f"{scheme}://{USER}@127.0.0.1:{port}/{folder}"

    # --- the mailbox -----------------------------------------------------------------------

    def folder_path(self, folder: str) -> Path:
        """The Maildir++ folder of an IMAP folder given in modified UTF-7 (INBOX = root)."""
        if folder.upper() == "INBOX":
            return self.maildir
        return self.maildir / ("." + folder.replace("/", "."))

    def chown(self) -> None:
        for root, dirs, files in os.walk(self.base / "mail"):
            os.chown(root, self.uid, self.gid)
            for name in (*dirs, *files):
                os.chown(os.path.join(root, name), self.uid, self.gid)

    def add_messages(self, messages: Iterable[bytes], folder: str = "INBOX",
                     *, seen: bool = False) -> list[Path]:
        """Put messages into a folder (created when missing) as maildir files, in order."""
        target = self.folder_path(folder)
        for sub in ("cur", "new", "tmp"):
            (target / sub).mkdir(parents=True, exist_ok=True)
        if target != self.maildir:
            (target / "maildirfolder").touch()
        paths = []
        stamp = int(time.time())
        for raw in messages:
            unique = f"{stamp}.M{len(paths)}P{os.getpid()}Q{time.monotonic_ns()}.sluice-test"
            path = target / "cur" / f"{unique}:2,S" if seen else target / "new" / unique
            path.write_bytes(raw)
            paths.append(path)
        self.chown()
        return paths

    def clear(self) -> None:
        """Remove every message and folder (the user's mail returns to an empty INBOX)."""
        self.stop()
        shutil.rmtree(self.maildir)
        self.maildir.mkdir()
        for sub in ("cur", "new", "tmp"):
            (self.maildir / sub).mkdir()
        self.chown()
        self.start()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One plain-IMAP Dovecot for the session; tests `clear()` it before filling it."""
    server = Dovecot()
    yield server
    server.close()


@pytest.fixture(scope="session")
def dovecot_tls() -> Iterator[Dovecot]:
    """A Dovecot with imaps (self-signed certificate, trusted through `ca_file`)."""
    server = Dovecot(tls=True)
    yield server
    server.close()
