"""Accounts, the addresses seen in mail, and the `sluice user` commands."""

from __future__ import annotations

import io
import smtplib
from pathlib import Path

import pytest

from sluice.api import people
from sluice.cli import main
from sluice.core.db import init_schema, make_engine
from sluice.core.settings import load_settings
from tests.servers import GatewayThread, gateway_settings

RULES = """\
internal_domains: [example.com]
destinations: {}
policy:  # one rule, so the gateway decides with the rules (and marks outsiders external)
  - {match: {sender: nobody@example.com}, action: deliver}
"""


def test_users_seen_are_internal_recipients_and_senders(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    settings = gateway_settings(tmp_path, rules_file=rules, classify=False)
    gw = GatewayThread(settings, hook=None)  # the rules mark outside recipients external
    try:
        with smtplib.SMTP("127.0.0.1", gw.port) as client:
            client.sendmail("Dana@Example.com", ["Ann@Example.com", "out@elsewhere.example"],
                            b"From: Dana <Dana@Example.com>\r\nSubject: hi\r\n\r\nhi\r\n")
            client.sendmail("x@elsewhere.example", ["bob@example.com"],
                            b"From: x@elsewhere.example\r\nSubject: hi\r\n\r\nhi\r\n")
    finally:
        gw.stop()
    engine = make_engine(settings)
    assert people.users_seen(engine, ["example.com"]) == [
        "ann@example.com", "bob@example.com", "dana@example.com"]
    # Without the domains: the recipients the rules did not mark external (no senders).
    assert people.users_seen(engine) == ["ann@example.com", "bob@example.com"]
    engine.dispose()


def test_ensure_user_creates_once_and_updates(tmp_path: Path) -> None:
    engine = make_engine(load_settings(None, data_dir=tmp_path / "data"))
    init_schema(engine)
    first = people.ensure_user(engine, " Ann@Example.com ", name="Ann")
    assert (first.email, first.role, first.has_password) == ("ann@example.com", "member", False)
    again = people.ensure_user(engine, "ann@example.com", role="admin", password="a long one")
    assert (again.role, again.name, again.has_password) == ("admin", "Ann", True)
    assert [u.email for u in people.list_users(engine)] == ["ann@example.com"]
    with pytest.raises(people.PeopleError, match="not an address"):
        people.ensure_user(engine, "not-an-address")
    with pytest.raises(people.PeopleError, match="unknown role"):
        people.ensure_user(engine, "b@example.com", role="owner")
    with pytest.raises(people.PeopleError, match="no account"):
        people.issue_token(engine, "nobody@example.com", "x")
    engine.dispose()


def test_user_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    monkeypatch.setattr("sys.stdin", io.StringIO("a good password\n"))
    assert main(["user", "add", "Boss@example.com", "--admin", "--password-stdin", *data]) == 0
    assert main(["user", "add", "ann@example.com", "--name", "Ann", *data]) == 0
    assert main(["user", "token", "ann@example.com", "--label", "ci", *data]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["boss@example.com: admin",
                       "ann@example.com: member (no password: tokens or single sign-on)"]
    token = out[2]
    assert main(["user", "role", "ann@example.com", "admin", *data]) == 0
    assert main(["user", "deactivate", "boss@example.com", *data]) == 0
    assert main(["user", "list", *data]) == 0
    listing = capsys.readouterr().out
    assert "ann@example.com\tadmin\tnever signed in" in listing
    assert "boss@example.com\tadmin (deactivated)" in listing
    assert main(["user", "token", "nobody@example.com", "--label", "x", *data]) == 1
    assert "no account for nobody@example.com" in capsys.readouterr().err

    engine = make_engine(load_settings(None, data_dir=tmp_path / "data"))
    viewer = people.viewer_for_token(engine, token)
    assert viewer is not None and (viewer.email, viewer.role) == ("ann@example.com", "admin")
    assert people.verify_password(engine, "boss@example.com", "a good password") is None
    people.set_active(engine, "boss@example.com", True)
    assert people.verify_password(engine, "boss@example.com", "a good password") is not None
    engine.dispose()
