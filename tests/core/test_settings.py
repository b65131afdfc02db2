"""Settings: defaults < file < environment < command line; unsafe values refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice.core.errors import ConfigError
from sluice.core.settings import load_settings


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "sluice.toml"
    config.write_text('[sluice]\nupstream = "file:25"\nmax_sessions = 7\n'
                      'listen = ["127.0.0.1:2525"]\n')
    monkeypatch.setenv("SLUICE_MAX_SESSIONS", "9")
    monkeypatch.setenv("SLUICE_LISTEN", "127.0.0.1:1,lmtp://127.0.0.1:2")
    settings = load_settings(config, upstream=None, max_recipients=200)
    assert settings.upstream == "file:25"  # from the file
    assert settings.max_sessions == 9  # the environment beats the file
    assert settings.listen == ["127.0.0.1:1", "lmtp://127.0.0.1:2"]
    assert settings.max_recipients == 200  # the command line beats everything
    assert load_settings(config, max_sessions=3).max_sessions == 3


@pytest.mark.parametrize("bad", [
    {"max_recipients": 99},
    {"sqlite_synchronous": "OFF"},
    {"allowed_networks": ["not-a-network"]},
    {"tls_cert": "cert.pem"},
    {"fault_pause_before_reply": 1.0},
    {"no_such_setting": 1},
])
def test_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        load_settings(None, **bad)


def test_unreadable_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.toml")
