"""The FastAPI application: built by a factory from Settings, nothing configured at import."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine

from sluice import __version__
from sluice.api import queries
from sluice.api.deps import EngineDep

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def create_app(engine: Engine) -> FastAPI:
    app = FastAPI(title="Sluice", version=__version__,
                  description="Mail that need not be mail, moved to one shared place.")
    app.state.engine = engine

    @app.get("/healthz")
    def health(engine: EngineDep) -> dict[str, Any]:
        return {"status": "ok", "messages": queries.message_count(engine)}

    @app.get("/api/messages")
    def messages(engine: EngineDep,
                 limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 50
                 ) -> list[queries.MessageView]:
        return queries.recent_messages(engine, limit)

    @app.get("/api/stats")
    def stats(engine: EngineDep) -> dict[str, Any]:
        return {
            "messages": queries.message_count(engine),
            "recipient_outcomes": queries.status_counts(engine),
            "inboxes": queries.inbox_counts(engine),
        }

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request, engine: EngineDep) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(request, "home.html", {
            "messages": queries.recent_messages(engine, 100),
            "statuses": queries.status_counts(engine),
            "inboxes": queries.inbox_counts(engine),
            "total": queries.message_count(engine),
            "version": __version__,
        })

    return app
