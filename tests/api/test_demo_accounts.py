"""`sluice demo` gives people accounts to sign in with, with passwords made per run."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from sluice.api.app import create_app
from sluice.core.db import init_schema, make_engine
from sluice.core.settings import load_settings
from sluice.demo.commands import demo_accounts
from tests.webauth import sign_in


def test_demo_accounts_sign_in_with_fresh_passwords(tmp_path: Path) -> None:
    engine = make_engine(load_settings(None, data_dir=tmp_path / "data"))
    init_schema(engine)
    first = demo_accounts(engine)
    second = demo_accounts(engine)
    assert [(e, r) for e, r, _ in first] == [(e, r) for e, r, _ in second]
    assert {r for _, r, _ in first} == {"admin", "member"}
    assert all(a[2] != b[2] for a, b in zip(first, second, strict=True))
    for email, role, password in second:
        client = TestClient(create_app(engine))
        sign_in(client, email, password)
        assert client.get("/api/me").json()["role"] == role
    engine.dispose()
