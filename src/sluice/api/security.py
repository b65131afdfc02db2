"""The web app's security settings as one value, its key, response headers and client address.

The key signs the sign-in form's CSRF token (there is no session yet to hold one). It is
never a constant: it comes from `session_secret` or is generated once and kept in the data
folder (mode 0600), so every process sharing that folder agrees on it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sluice.core.settings import Settings

SECRET_FILE = "web-secret"

#: Pages: scripts and styles only from our own /static, nothing framed, forms post to us.
HTML_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "object-src 'none'; base-uri 'none'; form-action 'self'; "
               "frame-ancestors 'none'")
#: SVG charts carry their own <style>; they may never run scripts.
SVG_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class WebConfig:
    """What the sign-in code needs from the settings, read once when the app is built."""

    secret: bytes
    secure_cookies: bool = False
    session_days: float = 14.0
    trusted_user_header: str = ""
    trusted_proxies: tuple[Network, ...] = ()
    login_max_failures: int = 5
    login_window_seconds: float = 900.0
    base_url: str = ""


def web_config(settings: Settings | None) -> WebConfig:
    """The config for an app; without settings (tests, tools) the key lives in memory only."""
    if settings is None:
        return WebConfig(secret=secrets.token_bytes(32))
    return WebConfig(
        secret=(settings.session_secret.encode() if settings.session_secret
                else load_or_create_secret(settings.data_dir)),
        secure_cookies=settings.secure_cookies,
        session_days=settings.session_days,
        trusted_user_header=settings.trusted_user_header,
        trusted_proxies=tuple(ipaddress.ip_network(n, strict=False)
                              for n in settings.trusted_proxies),
        login_max_failures=settings.login_max_failures,
        login_window_seconds=settings.login_window_seconds,
        base_url=settings.effective_base_url,
    )


def load_or_create_secret(data_dir: Path) -> bytes:
    path = data_dir / SECRET_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    try:  # O_EXCL: when two processes race, the first one's key wins for both
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex())
    return key


def sign(secret: bytes, purpose: str, value: str) -> str:
    """An HMAC of `value` for one purpose, so a token for one use cannot serve another."""
    return hmac.new(secret, f"{purpose}\0{value}".encode(), hashlib.sha256).hexdigest()


def same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


def from_trusted_proxy(config: WebConfig, request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in net for net in config.trusted_proxies)


def client_address(config: WebConfig, request: Request) -> str:
    """The client's address; behind a trusted proxy, the last hop it added to X-Forwarded-For."""
    host = request.client.host if request.client else ""
    if from_trusted_proxy(config, request):
        forwarded = request.headers.get("x-forwarded-for", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-1][:64]
    return host[:64]


class SecurityHeaders:
    """Adds CSP, nosniff, referrer and framing headers to every response (pure ASGI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                content_type = next((v for n, v in headers if n.lower() == b"content-type"), b"")
                policy = SVG_POLICY if content_type.startswith(b"image/svg") else HTML_POLICY
                for name, value in ((b"content-security-policy", policy.encode()),
                                    (b"x-content-type-options", b"nosniff"),
                                    (b"referrer-policy", b"same-origin"),
                                    (b"x-frame-options", b"DENY")):
                    if name not in names:
                        headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

