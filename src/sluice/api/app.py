"""The FastAPI application: built by a factory from Settings, nothing configured at import."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from sluice import __version__
from sluice.api import auth, openapi, queries
from sluice.api.auth import AdminDep, OptionalViewerDep
from sluice.api.deps import EngineDep
from sluice.api.routes import admin as admin_routes
from sluice.api.routes import auth as auth_routes
from sluice.api.routes import calendar as calendar_routes
from sluice.api.routes import channels as channel_routes
from sluice.api.routes import dashboard as dashboard_routes
from sluice.api.routes import feedback as feedback_routes
from sluice.api.routes import library as library_routes
from sluice.api.routes import me as me_routes
from sluice.api.routes import metrics as metrics_routes
from sluice.api.routes import posts as post_routes
from sluice.api.routes import search as search_routes
from sluice.api.routes import tokens as token_routes
from sluice.api.security import SecurityHeaders, web_config
from sluice.core.settings import Settings

STATIC = Path(__file__).parent / "static"


def create_app(engine: Engine, settings: Settings | None = None) -> FastAPI:
    """`settings` None (tests, tools): no rules file, a key that lives in memory only."""
    app = FastAPI(title="Sluice", version=__version__,
                  description="Mail that need not be mail, moved to one shared place.")
    app.state.engine = engine
    app.state.settings = settings
    auth.install(app, web_config(settings))
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in (auth_routes.router, me_routes.router, token_routes.router, admin_routes.router):
        app.include_router(router)
    for router in (channel_routes.router, post_routes.router, search_routes.router):
        app.include_router(router)  # the space: channels, posts and threads, search
    for router in (library_routes.router, feedback_routes.router, calendar_routes.router):
        app.include_router(router)  # the material library, feedback board and calendar
    app.include_router(metrics_routes.router)  # Prometheus /metrics
    app.include_router(dashboard_routes.router)  # the volume-reduction dashboard

    @app.get("/healthz")
    def health(engine: EngineDep) -> dict[str, Any]:
        return {"status": "ok", "messages": queries.message_count(engine)}

    @app.get("/api/messages")
    def messages(engine: EngineDep, viewer: AdminDep,
                 limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 50
                 ) -> list[queries.MessageView]:
        return queries.recent_messages(engine, limit)

    @app.get("/api/stats")
    def stats(engine: EngineDep, viewer: AdminDep) -> dict[str, Any]:
        return {
            "messages": queries.message_count(engine),
            "recipient_outcomes": queries.status_counts(engine),
            "inboxes": queries.inbox_counts(engine),
        }

    @app.get("/", include_in_schema=False)
    def home(viewer: OptionalViewerDep) -> RedirectResponse:
        return RedirectResponse("/space" if viewer is not None else "/login", status_code=303)

    openapi.install(app)
    return app
