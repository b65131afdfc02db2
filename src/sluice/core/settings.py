"""One typed Settings object, built once at start-up and passed down.

Precedence, lowest first: built-in defaults < config file (TOML) < `SLUICE_*` environment
variables < command-line options. Every limit the gateway enforces is a field here, with
its default, so operators can see and change them in one place.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from sluice.core.errors import ConfigError

MiB = 1024 * 1024
#: RFC 5321 4.5.3.1.8 says a server must accept at least 100 recipients per message.
MIN_RECIPIENT_LIMIT = 100
#: SQLite synchronous levels that make a committed transaction survive power loss.
DURABLE_SQLITE_SYNC = ("FULL", "EXTRA")
#: `sluice watch` renews its IMAP IDLE this often by default; RFC 2177 servers may drop an
#: IDLE after 30 minutes, so a renewal interval must stay under IDLE_LIMIT_SECONDS.
IDLE_RENEW_SECONDS = 25 * 60.0
IDLE_LIMIT_SECONDS = 29 * 60.0


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Everything configurable, with safe defaults."""

    model_config = SettingsConfigDict(env_prefix="SLUICE_", extra="forbid")

    # Where state lives.
    data_dir: Path = Path("data")
    database_url: str = ""  # empty: SQLite file in data_dir
    sqlite_synchronous: str = "FULL"

    # Listening side.
    listen: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["127.0.0.1:10025"])
    hostname: str = Field(default_factory=socket.getfqdn)
    allowed_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"]
    )
    tls_cert: Path | None = None
    tls_key: Path | None = None
    require_starttls: bool = False
    #: File of "user:scrypt-hash" lines; when set, AUTH is offered (only over TLS).
    auth_users_file: Path | None = None

    # Upstream side (the smarthost or Postfix's re-injection port). Empty: local maildirs.
    upstream: str = ""
    upstream_starttls: bool = False
    upstream_tls_verify: bool = True
    upstream_ca_file: Path | None = None
    upstream_user: str = ""
    upstream_password: str = ""
    upstream_connect_timeout: float = 30.0
    upstream_timeout: float = 300.0
    upstream_pool_size: int = 20
    upstream_idle_seconds: float = 30.0

    # Limits and protection.
    max_message_size: int = 50 * MiB
    max_recipients: int = 1000
    max_sessions: int = 100
    #: Concurrent sessions one client address may hold (0: no limit), so that one client
    #: cannot take every session (Postfix: smtpd_client_connection_count_limit). Behind
    #: Postfix every session comes from Postfix's address: keep the sluice transport's
    #: process limit in master.cf below this.
    max_sessions_per_client: int = Field(default=50, ge=0)
    #: Commands that move no mail (NOOP, RSET, VRFY, EXPN, HELP) a session may send between
    #: two messages (0: no limit): each one restarts command_timeout, so without a limit a
    #: client keeps an idle session for ever (Postfix: smtpd_junk_command_limit).
    junk_command_limit: int = Field(default=100, ge=0)
    command_timeout: float = 300.0
    #: DATA may take data_timeout seconds plus one second per data_min_rate bytes received.
    data_timeout: float = 60.0
    data_min_rate: int = 16 * 1024
    #: No byte at all for this long during DATA closes the session (RFC 5321 4.5.3.2.5).
    data_idle_timeout: float = 180.0
    #: Ledger entries older than this are forgotten (longer than any MTA retries).
    ledger_retention_days: float = 7.0
    #: History older than this is deleted (message facts, finished outbox jobs, sent digest
    #: items, orphaned blobs): by `sluice db prune`, and hourly by every gateway and worker
    #: node when set. 0: keep everything (`sluice db prune --older-than` still works).
    retention_days: float = Field(default=0.0, ge=0)

    # Classification: every recorded message carries its verdict.
    classify: bool = True
    #: A model trained with `sluice train`; empty: the model shipped with Sluice.
    classifier_model: Path | None = None

    # Diversion.
    #: Organisation policy and user rules (YAML, see docs/rules.md); empty: divert nothing.
    rules_file: Path | None = None
    #: A destination still down this long after the message arrived: deliver it as mail.
    outbox_deadline: float = 1800.0
    #: How often a running gateway looks for user rules changed in the web app (0: never).
    rules_reload_seconds: float = 5.0
    #: Run the outbox worker inside the gateway process (off for split deployments).
    worker: bool = True
    #: When the daily digests go out (HH:MM, UTC).
    digest_time: str = "07:00"

    # `sluice watch` (IMAP IDLE): each IDLE is ended and renewed after watch_idle_seconds.
    watch_idle_seconds: float = Field(default=IDLE_RENEW_SECONDS, gt=0, lt=IDLE_LIMIT_SECONDS)
    #: Longest single wait for the server inside IDLE: bounds how long a stop takes.
    watch_poll_seconds: float = Field(default=1.0, gt=0)
    #: Reconnect after a drop: first wait, doubled per failed attempt up to the maximum.
    watch_reconnect_seconds: float = Field(default=1.0, gt=0)
    watch_reconnect_max_seconds: float = Field(default=300.0, gt=0)

    # Web app.
    web_listen: str = "127.0.0.1:8025"
    #: How people reach the web app; links in posts and digests use it.
    base_url: str = ""
    #: Key for the web app's signed values (sign-in form tokens); empty: a random key is
    #: generated once and kept in data_dir/web-secret (never a constant in the code).
    session_secret: str = ""
    #: A web sign-in lasts this many days (sessions are rows: signing out ends them at once).
    session_days: float = 14.0
    #: Secure flag on cookies: auto (when base_url is https), on, off.
    web_secure_cookies: str = "auto"
    #: Single sign-on: a reverse proxy puts the signed-in address in this header (e.g.
    #: X-Remote-User). Empty: off. Honoured only from the addresses in trusted_proxies.
    trusted_user_header: str = ""
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Failed sign-ins allowed per account and per client address within login_window.
    login_max_failures: int = 5
    login_window_seconds: float = 900.0

    # Figures and metrics.
    #: Figures about a domain or team are shown only for groups of at least this many people.
    privacy_min_group: int = Field(default=5, ge=2)
    #: Store no subjects of mail that stays mail (message facts keep headers-derived counts).
    header_only: bool = False
    #: Teams for the dashboard: team name -> member addresses (config file only).
    teams: dict[str, list[str]] = Field(default_factory=dict)
    #: Who may scrape /metrics without the token (default: this host only).
    metrics_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    #: When set, `Authorization: Bearer <token>` may scrape /metrics from anywhere.
    metrics_token: str = ""

    # Running as one node of several (`sluice serve --role`, docs/deploy.md).
    #: On SIGTERM/SIGINT, sessions in the middle of a transaction get this long to finish;
    #: what is left then is answered 421 (the client retries, nothing acknowledged is lost).
    shutdown_grace: float = Field(default=30.0, ge=0)
    #: HOST:PORT of the small health and metrics listener (/healthz, /metrics) of a node
    #: without the web role; empty: none.
    health_listen: str = ""
    #: /healthz fails the worker when its last completed round is older than this.
    health_worker_max_age: float = Field(default=300.0, gt=0)

    #: Testing only: pause this long after a message is safe and before answering 250, so a
    #: test can kill the gateway in exactly that window. Refused unless SLUICE_TESTING=1.
    fault_pause_before_reply: float = 0.0

    _split_lists = field_validator("listen", "allowed_networks", "trusted_proxies",
                                   "metrics_networks", mode="before")(_split_list)

    @field_validator("web_secure_cookies")
    @classmethod
    def _secure_choice(cls, value: str) -> str:
        if value.lower() not in ("auto", "on", "off"):
            raise ValueError("expected auto, on or off")
        return value.lower()

    @field_validator("trusted_proxies", "metrics_networks")
    @classmethod
    def _proxies_parse(cls, value: list[str]) -> list[str]:
        for net in value:
            ipaddress.ip_network(net, strict=False)
        return value

    @field_validator("digest_time")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        hour, sep, minute = value.partition(":")
        if not (sep and hour.isdigit() and minute.isdigit() and int(hour) < 24
                and int(minute) < 60):
            raise ValueError("expected HH:MM (24-hour clock, UTC)")
        return f"{int(hour):02d}:{int(minute):02d}"

    @field_validator("retention_days")
    @classmethod
    def _retention_floor(cls, value: float) -> float:
        if 0 < value < 1:
            raise ValueError("must be 0 (keep everything) or at least 1 day: mail in flight "
                             "could lose its records")
        return value

    @field_validator("max_recipients")
    @classmethod
    def _recipients_floor(cls, value: int) -> int:
        if value < MIN_RECIPIENT_LIMIT:
            raise ValueError(f"must be at least {MIN_RECIPIENT_LIMIT} (RFC 5321 4.5.3.1.8)")
        return value

    @field_validator("allowed_networks")
    @classmethod
    def _networks_parse(cls, value: list[str]) -> list[str]:
        for net in value:
            ipaddress.ip_network(net, strict=False)
        return value

    @field_validator("sqlite_synchronous")
    @classmethod
    def _durable_sync(cls, value: str) -> str:
        if value.upper() not in DURABLE_SQLITE_SYNC:
            raise ValueError(
                f"synchronous={value} could lose acknowledged mail on power loss; "
                f"use one of {', '.join(DURABLE_SQLITE_SYNC)}"
            )
        return value.upper()

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together")
        if self.require_starttls and not self.tls_cert:
            raise ValueError("require_starttls needs tls_cert and tls_key")
        if self.fault_pause_before_reply and os.environ.get("SLUICE_TESTING") != "1":
            raise ValueError("fault_pause_before_reply is for tests only (SLUICE_TESTING=1)")
        return self

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'sluice.db'}"

    @property
    def effective_base_url(self) -> str:
        return self.base_url or f"http://{self.web_listen}"

    @property
    def secure_cookies(self) -> bool:
        if self.web_secure_cookies == "auto":
            return self.effective_base_url.startswith("https://")
        return self.web_secure_cookies == "on"

    @property
    def networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(n, strict=False) for n in self.allowed_networks)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build Settings from defaults, a TOML file, SLUICE_* variables and explicit overrides.

    Overrides whose value is None are ignored, so CLI options that were not given do not
    mask the environment or the file.
    """
    file_values: dict[str, Any] = {}
    path = config_file or (Path(os.environ["SLUICE_CONFIG"]) if "SLUICE_CONFIG" in os.environ
                           else None)
    try:
        if path is not None:
            with path.open("rb") as fh:
                raw = tomllib.load(fh)
            file_values = dict(raw.get("sluice", raw))
        from_env = Settings()
        env_values = {name: getattr(from_env, name) for name in from_env.model_fields_set}
        cli_values = {k: v for k, v in overrides.items() if v is not None}
        return Settings(**{**file_values, **env_values, **cli_values})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise ConfigError(str(exc)) from exc
