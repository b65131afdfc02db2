"""The only bytes Sluice adds to a relayed message: headers prepended on top."""

from __future__ import annotations

import time
from email.utils import formatdate

_date_cache: tuple[int, str] = (0, "")


def _now_rfc5322() -> str:
    """The date of the current second, formatted once per second (not once per message)."""
    global _date_cache
    second = int(time.time())
    if _date_cache[0] != second:
        _date_cache = (second, formatdate(second, localtime=False))
    return _date_cache[1]


def received_header(*, helo: str, peer_ip: str, hostname: str, protocol: str, queue_id: str,
                    recipients: tuple[str, ...]) -> bytes:
    """An RFC 5321 4.4 trace header; folded lines start with a tab."""
    if not (helo.isascii() and helo.isprintable() and " " not in helo):
        helo = "".join(ch for ch in (helo or "unknown") if 32 < ord(ch) < 127)
    helo = helo[:255] or "unknown"
    line = (f"Received: from {helo} ([{peer_ip}])\r\n"
            f"\tby {hostname} (Sluice) with {protocol} id {queue_id}")
    if len(recipients) == 1 and recipients[0].isascii():
        line += f"\r\n\tfor <{recipients[0]}>"
    return f"{line}; {_now_rfc5322()}\r\n".encode("utf-8", "replace")


def protocol_name(*, lmtp: bool, tls: bool, authenticated: bool, extended: bool) -> str:
    """RFC 3848 "with" keywords."""
    if lmtp:
        base = "LMTP"
    elif extended:
        base = "ESMTP"
    else:
        return "SMTP"
    return base + ("S" if tls else "") + ("A" if authenticated else "")
