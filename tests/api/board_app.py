"""The web app over a database with board posts, and API tokens for people with different
access: Ann and Bob receive mail, Eve receives none of it, Root is an admin who received none."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine

from sluice.api import people
from sluice.api.app import create_app
from tests.space.board_mail import board_engine

PASSWORD = "correct horse battery"
PEOPLE = {"ann@example.com": "member", "bob@example.com": "member",
          "eve@example.com": "member", "root@example.com": "admin"}


@dataclass
class BoardApp:
    engine: Engine
    client: TestClient
    tokens: dict[str, str]

    def auth(self, email: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[email]}"}

    def get(self, path: str, email: str | None, **params: str) -> Response:
        headers = self.auth(email) if email else {}
        return self.client.get(path, headers=headers, params=params)


def board_app(tmp_path: Path) -> BoardApp:
    engine = board_engine(tmp_path)
    tokens = {}
    for email, role in PEOPLE.items():
        people.ensure_user(engine, email, role=role, password=PASSWORD)
        tokens[email] = people.issue_token(engine, email, "test")
    return BoardApp(engine, TestClient(create_app(engine)), tokens)
