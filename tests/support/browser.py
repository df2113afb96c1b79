"""The UI's browser tests: headless Debian `chromium` driven through Playwright for Python.

Never `playwright install`: the browser is the system one (the ``chromium`` fixture of
tests/conftest.py finds it, or skips, or fails when CI is set). tests/conftest.py registers the
``browser`` and ``page`` fixtures from ``launch`` and ``staff_page`` here; the rest are helpers the
browser tests import. Assertions after an action use Playwright's auto-waiting ``expect`` (its
timeout set here), so they hold however long the page takes to react. ``shot`` saves screenshots,
by default in var/screenshots/ (printed at the end of the run).
"""

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

# Playwright's sync API keeps an event loop in this thread; the ORM calls made between page
# actions are still plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip
SCREENSHOTS = Path(django_settings.BASE_DIR) / "var" / "screenshots"
TIMEOUT_MS = 10_000
VIEWPORT = {"width": 1440, "height": 900}
expect.set_options(timeout=TIMEOUT_MS)


@contextlib.contextmanager
def launch(chromium: str) -> Iterator[Browser]:
    """Chromium at path ``chromium``, headless, closed on exit."""
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def staff_context(browser: Browser, base_url: str) -> BrowserContext:
    """A browser context logged in as a staff user (the session cookie of a force_login) at ``base_url``."""
    user = get_user_model().objects.create_user("ops", password="pw-for-tests", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    context = browser.new_context(viewport=VIEWPORT, base_url=base_url)
    context.add_cookies([{"name": django_settings.SESSION_COOKIE_NAME, "value": cookie, "url": base_url}])
    return context


def open_page(context: BrowserContext) -> Page:
    """A page of ``context`` that records JavaScript errors in ``page.errors``."""
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    return page


@contextlib.contextmanager
def staff_page(browser: Browser, base_url: str) -> Iterator[Page]:
    """A page logged in as a staff user at ``base_url``; no JavaScript error may have happened by the end."""
    context = staff_context(browser, base_url)
    page = open_page(context)
    yield page
    context.close()
    assert page.errors == [], f"JavaScript errors: {page.errors}"


def shot(page: Page, name: str, folder: Path | None = None, **options) -> Path:
    """Save a screenshot of ``page`` as ``<folder>/<name>.png`` (var/screenshots/ unless ``folder`` is given).

    The whole page unless ``options`` say otherwise (Playwright's ``full_page``, ``clip``, ...).
    """
    path = (folder or SCREENSHOTS) / f"{name}.png"
    page.screenshot(path=str(path), **({"full_page": True} | options))
    return path


def has_class(name: str) -> re.Pattern:
    """For ``expect(...).to_have_class``: the class attribute holds ``name`` among others."""
    return re.compile(rf"(^|\s){re.escape(name)}(\s|$)")


# --- The graph editor ----------------------------------------------------------------------------


def node(page: Page, node_id: str) -> Locator:
    """A node of the graph drawn on the page."""
    return page.locator(f'.node[data-id="{node_id}"]')


def set_field(page: Page, field: str, value: str) -> None:
    """Type ``value`` into a field of the editor's side panel."""
    page.fill(f'.panel [data-field="{field}"]', value)


def wait_valid(page: Page) -> None:
    """Until the editor's live validation says the definition is valid."""
    page.wait_for_selector("#editor[data-validity=valid]")
