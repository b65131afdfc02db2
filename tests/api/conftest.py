"""Browser fixtures for the end-to-end tests of the web app (see tests/browser.py)."""

from tests.browser import browser, page, web_server  # noqa: F401
