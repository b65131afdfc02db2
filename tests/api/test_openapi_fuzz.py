"""schemathesis against the app's own OpenAPI document: no input gives a 5xx, and every
answer whose status the app declares matches the declared schema.

In process (ASGI), over a space with real content (library documents with versions, feedback,
a calendar invitation, a post with files), as an admin and as a plain member, each with an API
token. Examples per operation: SLUICE_API_FUZZ_EXAMPLES (default 10; more on demand).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation, checks
from sqlalchemy import Engine

from sluice.api import people
from sluice.api.app import create_app
from tests.space.board_mail import board_engine, mime, publish

EXAMPLES = int(os.environ.get("SLUICE_API_FUZZ_EXAMPLES", "10"))
ADMIN, MEMBER = "root@example.com", "ann@example.com"
ROLES = {ADMIN: "admin", MEMBER: "member"}
ICS = ("BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:launch@example.com\r\n"
       "DTSTART:20240310T090000Z\r\nDTEND:20240310T100000Z\r\nSUMMARY:Launch\r\n"
       "END:VEVENT\r\nEND:VCALENDAR\r\n")


def _content(engine: Engine) -> None:
    """A little of everything the space holds, for Ann and Bob."""
    team = ["ann@example.com", "bob@example.com"]
    pdf = "application/pdf"
    publish(engine, mime("Pricing", files=[("Pricing v1.pdf", pdf, b"%PDF one")]),
            category="material", recipients=team, channel="sales")
    publish(engine, mime("Pricing", files=[("Pricing v2.pdf", pdf, b"%PDF two")], logo=True),
            category="material", recipients=team, channel="sales")
    publish(engine, mime("Survey: the offsite", sender="hr@example.com", text="How was it?"),
            category="feedback", recipients=team, channel="feedback")
    publish(engine, mime("Launch", calendar=[("REQUEST", ICS)]), category="event",
            recipients=team, channel="events",
            received_at=datetime(2024, 3, 1, 9, 0, tzinfo=UTC))
    publish(engine, mime("Re: Pricing", sender="bob@example.com", to=team, text="Looks good."),
            category="discussion", recipients=team, channel="sales")


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, FastAPI]]:
    engine = board_engine(tmp_path_factory.mktemp("openapi"))
    for email, role in {**ROLES, "bob@example.com": "member"}.items():
        people.ensure_user(engine, email, role=role)
    _content(engine)
    yield engine, create_app(engine)
    engine.dispose()


class Tokens:
    """A working token per account. The operations under test may revoke tokens, change
    roles or deactivate accounts; that must not end the run, so a token is renewed (and the
    account put back) whenever it stopped working as intended."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.tokens: dict[str, str] = {}

    def header(self, email: str) -> dict[str, str]:
        token = self.tokens.get(email)
        viewer = people.viewer_for_token(self.engine, token) if token else None
        if viewer is None or viewer.role != ROLES[email]:
            people.set_role(self.engine, email, ROLES[email])
            people.set_active(self.engine, email, True)
            token = self.tokens[email] = people.issue_token(self.engine, email, "schemathesis")
        return {"Authorization": f"Bearer {token}"}


def _failure(tokens: Tokens, operation: APIOperation) -> str | None:
    """The first failing case of one operation, described; None when all pass."""

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def run(case: schemathesis.Case) -> None:
        for email in (ADMIN, MEMBER):
            case.call_and_validate(
                headers=tokens.header(email),
                checks=[checks.not_a_server_error, checks.response_schema_conformance])

    try:
        run()
    except (Exception, BaseExceptionGroup) as exc:  # the report names the case and check
        return f"{operation.label}: {exc}"
    return None


def test_no_input_gives_a_server_error(space: tuple[Engine, FastAPI]) -> None:
    """Every operation of the OpenAPI document (schemathesis' pytest plugin is not used: its
    lazy fixture loader does not run on this pytest)."""
    engine, app = space
    api = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) > 30
    tokens = Tokens(engine)
    failures = [f for f in (_failure(tokens, op) for op in operations) if f is not None]
    assert not failures, "\n\n".join(failures)


# -- what schemathesis found ----------------------------------------------------------------


def test_ids_past_the_database_integer_range_get_422(space: tuple[Engine, FastAPI]) -> None:
    """SQLite raised OverflowError for ids past 2**63 (a 500)."""
    engine, app = space
    client, auth = TestClient(app), Tokens(engine).header(MEMBER)
    huge = 2**64
    for method, path in (("POST", f"/api/posts/{huge}/comments"),
                         ("DELETE", f"/api/posts/{huge}/read"),
                         ("GET", f"/api/posts/{huge}"),
                         ("GET", f"/api/documents/{huge}"),
                         ("GET", f"/api/feedback/{huge}"),
                         ("DELETE", f"/api/tokens/{huge}")):
        response = client.request(method, path, headers=auth, json={"text": "hi"})
        assert response.status_code == 422, (method, path, response.text)
    assert client.get("/api/posts/999999", headers=auth).status_code == 404


def test_a_channel_name_with_surrounding_blanks_is_refused(
        space: tuple[Engine, FastAPI]) -> None:
    """It created the stripped name, then looked the unstripped one up: a 500."""
    engine, app = space
    client, auth = TestClient(app), Tokens(engine).header(ADMIN)
    assert client.put("/api/channels/plans%0D", headers=auth, json={}).status_code == 400
    names = [c["name"] for c in client.get("/api/channels", headers=auth).json()]
    assert "plans" not in names
    assert client.put("/api/channels/plans", headers=auth, json={}).status_code == 200


def test_the_app_s_own_422_answers_are_declared(space: tuple[Engine, FastAPI]) -> None:
    engine, app = space
    client, auth = TestClient(app), Tokens(engine).header(MEMBER)
    answer = client.put("/api/me/rules", headers=auth, json={"rules": [{"action": "nope"}]})
    assert answer.status_code == 422 and "problems" in answer.json()["detail"]
    declared = client.get("/openapi.json").json()["paths"]["/api/me/rules"]["put"]
    choices = declared["responses"]["422"]["content"]["application/json"]["schema"]["anyOf"]
    assert {"$ref": "#/components/schemas/Refusal"} in choices
    assert {"$ref": "#/components/schemas/HTTPValidationError"} in choices
