"""The real web app on a loopback port and Debian's Chromium driven by Playwright.

Fixtures (registered for tests/api by tests/api/conftest.py; elsewhere import them the same
way):

- `web_server` (session): the app served by uvicorn in a thread on a free port, with its own
  data folder and a rules file (`WEB_RULES`: internal domain example.com, space destinations
  `team` and `updates`). Use `web_server.engine` to add users and records; tests share it,
  so each test uses its own addresses.
- `browser` (session) and `page` (per test, fresh context: no cookies carried over).
  Skipped with a reason when Chromium is not installed.

`WebServer(settings)` starts another one (e.g. on the data folder of a GatewayThread).
`sign_in(page, base_url, email, password)` signs in through the form.
Screenshots go to `artifact_path(name)` (tests/artifacts/, ignored by git).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from sluice.api.app import create_app
from sluice.core.db import init_schema, make_engine
from sluice.core.settings import Settings, load_settings
from tests.servers import free_port

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
WEB_RULES = """\
internal_domains: [example.com]
destinations:
  team: {kind: space}
  updates: {kind: space}
policy:
  - name: broadcasts
    match: {category: broadcast}
    action: divert
    to: updates
"""


class WebServer:
    """create_app(engine, settings) under uvicorn in a daemon thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings)
        init_schema(self.engine)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(self.engine, settings), host="127.0.0.1",
                                port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the web app did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.engine.dispose()


def web_settings(folder: Path, **overrides: Any) -> Settings:
    folder.mkdir(parents=True, exist_ok=True)
    rules = folder / "rules.yaml"
    rules.write_text(WEB_RULES)
    values: dict[str, Any] = {"data_dir": folder / "data", "rules_file": rules,
                              "hostname": "web.test", "listen": ["127.0.0.1:0"]}
    return load_settings(None, **{**values, **overrides})


def artifact_path(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


def sign_in(page: Any, base_url: str, email: str, password: str) -> None:
    page.goto(f"{base_url}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("button[type=submit]")
    if "/login" in page.url:
        raise AssertionError(f"sign-in as {email} failed: {page.inner_text('main')}")


@pytest.fixture(scope="session")
def web_server() -> Iterator[WebServer]:
    folder = Path(tempfile.mkdtemp(prefix="sluice-web-"))
    server = WebServer(web_settings(folder))
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Per module: Playwright's sync API keeps an event loop running in the main thread while
    it is open, and every later test that calls asyncio.run() would fail."""
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("CI"):  # CI installs Chromium: missing there is a failure
            raise FileNotFoundError("chromium")
        pytest.skip("Chromium is not installed (Debian package chromium; "
                    "scripts/system-deps.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    opened = context.new_page()
    yield opened
    context.close()
