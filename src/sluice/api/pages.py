"""Rendering HTML pages: one template folder, and the context every page gets.

Pages extend `base.html` (blocks: `title`, `head` for an extra stylesheet from /static,
`content`); `render` adds `viewer`, `csrf_token` and `nav`. Inline scripts and inline
styles are blocked by the Content-Security-Policy: put them in files under /static.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from sluice import __version__
from sluice.api.auth import csrf_token
from sluice.space.viewer import Viewer

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

#: The navigation bar: (label, path, admins only).
NAV: tuple[tuple[str, str, bool], ...] = (
    ("Channels", "/space", False),
    ("Library", "/library", False),
    ("Feedback", "/feedback", False),
    ("Calendar", "/calendar", False),
    ("Search", "/search", False),
    ("Dashboard", "/dashboard", False),
    ("My rules", "/me/rules", False),
    ("My mail", "/me/mail", False),
    ("Admin", "/admin", True),
)


def render(request: Request, template: str, viewer: Viewer | None,
           status_code: int = 200, **context: Any) -> HTMLResponse:
    nav = [(label, path) for label, path, admin_only in NAV
           if viewer is not None and (viewer.is_admin or not admin_only)]
    return TEMPLATES.TemplateResponse(request, template, {
        "viewer": viewer, "csrf_token": csrf_token(request), "nav": nav,
        "current_path": request.url.path, "version": __version__, **context,
    }, status_code=status_code)
