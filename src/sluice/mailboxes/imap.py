"""Read mail from an IMAP mailbox (imapclient), without changing it.

`imaps://user@host[:port]/FOLDER` (TLS from the start, port 993) or `imap://…` (port 143,
upgraded with STARTTLS whenever the server offers it). The password comes from the
environment variable `SLUICE_IMAP_PASSWORD`, or from a prompt on a terminal.

Folders are opened read-only (EXAMINE) and bodies fetched with `BODY.PEEK[]`, so nothing is
marked read. Messages are walked in UID order, `FETCH_BATCH` at a time: first UID and size
for a window of sequence numbers, then the bodies of those not yet done and not over the size
limit. Folder names travel as the server spells them (modified UTF-7 bytes); a folder that
cannot be opened is reported and skipped.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import ssl
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from sluice.core.errors import ConfigError
from sluice.mailboxes.items import (
    DEFAULT_MAX_MESSAGE_BYTES,
    FETCH_FAILED,
    FOLDER_UNAVAILABLE,
    DoneFilter,
    Fetched,
    Item,
    Unreadable,
    nothing_done,
    too_large,
)
from sluice.mailboxes.names import display_name, is_chosen

#: Where the IMAP password is read from when it is not typed at a prompt.
PASSWORD_ENV = "SLUICE_IMAP_PASSWORD"
#: Messages whose UID and size are asked for, and whose bodies are fetched, per round trip.
FETCH_BATCH = 200
#: Seconds a connect or a command may take before the connection counts as dropped.
IMAP_TIMEOUT = 60.0
_BODY = b"BODY[]"


@dataclass(frozen=True, slots=True)
class ImapUrl:
    """Where a mailbox is: `imaps://user@host:port/FOLDER` taken apart."""

    host: str
    port: int
    user: str
    tls: bool
    folder: str = ""

    @property
    def label(self) -> str:
        """The mailbox as reports name it (no folder, never a password)."""
        scheme = "imaps" if self.tls else "imap"
        return f"{scheme}://{self.user}@{self.host}:{self.port}"


def is_imap_url(text: str) -> bool:
    return text.lower().startswith(("imap://", "imaps://"))


def parse_imap_url(text: str) -> ImapUrl:
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("imap", "imaps"):
        raise ConfigError(f"not an IMAP URL (imap:// or imaps://): {text}")
    if not parts.hostname:
        raise ConfigError(f"IMAP URL without a host: {text}")
    if not parts.username:
        raise ConfigError(f"IMAP URL without a user (imaps://USER@HOST/…): {text}")
    if parts.password:
        raise ConfigError(f"put the IMAP password in {PASSWORD_ENV}, not in the URL")
    tls = scheme == "imaps"
    try:
        port = parts.port or (993 if tls else 143)
    except ValueError as exc:
        raise ConfigError(f"IMAP URL with a bad port: {text}") from exc
    return ImapUrl(host=parts.hostname, port=port, user=unquote(parts.username), tls=tls,
                   folder=unquote(parts.path.lstrip("/")))


def imap_password(env: dict[str, str] | None = None) -> str:
    """The password from `SLUICE_IMAP_PASSWORD`, else asked for on the terminal."""
    value = (os.environ if env is None else env).get(PASSWORD_ENV)
    if value:
        return value
    if sys.stdin.isatty():
        return getpass.getpass("IMAP password: ")
    raise ConfigError(f"no IMAP password: set {PASSWORD_ENV} (standard input is no terminal)")


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def connect(url: ImapUrl, password: str, *, ca_file: Path | None = None,
            timeout: float = IMAP_TIMEOUT) -> IMAPClient:
    """A logged-in client; folder names stay bytes (`folder_encode` off) so that names the
    server spells oddly can still be opened exactly as listed."""
    context = tls_context(ca_file)
    client = IMAPClient(url.host, port=url.port, ssl=url.tls, ssl_context=context,
                        timeout=timeout)
    try:
        if not url.tls and client.has_capability("STARTTLS"):
            client.starttls(context)
        client.login(url.user, password)
    except Exception:
        _close(client)
        raise
    client.folder_encode = False
    return client


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except (IMAPClientError, OSError):
        with contextlib.suppress(IMAPClientError, OSError):
            client.shutdown()


@dataclass(frozen=True, slots=True)
class Folder:
    """A folder as listed: the server's spelling and the readable name."""

    raw: bytes
    name: str


def list_folders(client: IMAPClient, chosen: tuple[str, ...] = ()) -> list[Folder]:
    """Selectable folders, INBOX first, as `--folder` chose them (all when none)."""
    folders = []
    for flags, _delim, raw in client.list_folders():
        if any(flag.lower() == b"\\noselect" for flag in flags):
            continue
        raw_bytes = raw if isinstance(raw, bytes) else str(raw).encode()
        name = display_name(raw_bytes)
        if raw_bytes.upper() == b"INBOX":
            name = "INBOX"
        if is_chosen(name, raw_bytes, chosen):
            folders.append(Folder(raw_bytes, name))
    return sorted(folders, key=lambda f: (f.name != "INBOX", f.raw))


def select_readonly(client: IMAPClient, folder: Folder) -> dict[bytes, object]:
    try:
        wire = folder.raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise IMAPClientError("the folder name is not 7-bit: it cannot be sent") from exc
    return dict(client.select_folder(wire, readonly=True))


@dataclass(frozen=True, slots=True)
class ImapSource:
    """An IMAP mailbox to read: all folders, or those named in the URL or by `--folder`."""

    url: ImapUrl
    password: str = field(repr=False)
    folders: tuple[str, ...] = ()
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    ca_file: Path | None = None
    batch: int = FETCH_BATCH

    @property
    def label(self) -> str:
        return self.url.label

    def chosen(self) -> tuple[str, ...]:
        return self.folders or ((self.url.folder,) if self.url.folder else ())

    def read(self, done: DoneFilter = nothing_done) -> Iterator[Item]:
        client = connect(self.url, self.password, ca_file=self.ca_file)
        try:
            for folder in list_folders(client, self.chosen()):
                yield from self._folder(client, folder, done)
        finally:
            _close(client)

    def _folder(self, client: IMAPClient, folder: Folder, done: DoneFilter) -> Iterator[Item]:
        where = f"{self.label}/{folder.name}"
        try:
            state = select_readonly(client, folder)
        except IMAPClientError as exc:
            yield Unreadable(f"{self.label}|{folder.name}|select", where, FOLDER_UNAVAILABLE,
                             str(exc))
            return
        validity = int(str(state.get(b"UIDVALIDITY", 0)))
        exists = int(str(state.get(b"EXISTS", 0)))
        for start in range(1, exists + 1, self.batch):
            end = min(start + self.batch - 1, exists)
            client.use_uid = False
            try:
                meta = client.fetch(list(range(start, end + 1)), ["UID", "RFC822.SIZE"])
            finally:
                client.use_uid = True
            window = sorted((int(data[b"UID"]), int(data.get(b"RFC822.SIZE", 0)))
                            for data in meta.values() if b"UID" in data)
            keys = {uid: f"{self.label}|{folder.name}|{validity}|{uid}" for uid, _ in window}
            finished = set(done(list(keys.values())))
            wanted: list[int] = []
            for uid, size in window:
                key = keys[uid]
                if key in finished:
                    continue
                if size > self.max_bytes:
                    yield too_large(key, f"{where};UID={uid}", size, self.max_bytes)
                else:
                    wanted.append(uid)
            yield from self._bodies(client, folder.name, wanted, keys, where)

    def _bodies(self, client: IMAPClient, folder: str, uids: list[int], keys: dict[int, str],
                where: str) -> Iterator[Item]:
        if not uids:
            return
        bodies = client.fetch(uids, ["BODY.PEEK[]"])
        for uid in uids:
            data = bodies.get(uid, {})
            raw = data.get(_BODY)
            name = f"{where};UID={uid}"
            if isinstance(raw, bytes):
                yield Fetched(keys[uid], name, folder, raw)
            else:
                yield Unreadable(keys[uid], name, FETCH_FAILED, "no body in the answer "
                                 "(expunged meanwhile?)")
