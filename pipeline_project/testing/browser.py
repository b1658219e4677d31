"""Browser fixtures: pytest-playwright driving Debian's Chromium against pytest-django's live_server.

- `browser_type_launch_args`: launches /usr/bin/chromium (never `playwright install`); skips the
  test without it, or fails it under REQUIRE_SERVICES=1.
- `demo_data`: the demo users (admin1/admin123, artist1/artist123, …) and projects.
- `login(page, username, password)`: logs in through the real login page; `site_url(path)` builds
  live_server URLs.
- `screenshot(page, name)`: a full-page PNG under var/screenshots/ (gitignored) for a human to look at.
"""

import re
from pathlib import Path

import pytest

from . import service_missing

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "var" / "screenshots"
# Playwright's default of 30 s turns one broken page into a very slow failure.
TIMEOUT_MS = 10_000


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not CHROMIUM.exists():
        service_missing("chromium not installed (apt-get install chromium)")
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1400, "height": 900}}


@pytest.fixture
def page(page):
    page.set_default_timeout(TIMEOUT_MS)
    return page


@pytest.fixture
def demo_data(transactional_db, settings):
    """The demo users and projects, as `manage.py seed_demo` makes them."""
    from pipeline_project.accounts import demo as accounts_demo
    from pipeline_project.studio import demo as studio_demo

    # Seeding hashes a dozen passwords; the live server thread reads the same settings object.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    accounts_demo.seed()
    studio_demo.seed()


@pytest.fixture
def site_url(live_server):
    """`site_url("/projects/")` → the absolute URL of that path on the live server."""
    return lambda path="/": f"{live_server.url}{path}"


@pytest.fixture
def login(demo_data, site_url):
    """`login(page, "admin1", "admin123")`: log in through the login page as a demo user."""
    from playwright.sync_api import expect

    def do_login(page, username, password):
        page.goto(site_url("/accounts/login/"))
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(site_url("/"))
        return page

    return do_login


def screenshot(page, name: str) -> Path:
    """Save a full-page PNG as var/screenshots/<name>.png and return its path."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
