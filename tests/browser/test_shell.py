"""The site shell in a real browser: login, header, theme, logout, and a few HTMX pages."""

import re

import pytest
from playwright.sync_api import expect

from pipeline_project.testing.browser import screenshot

pytestmark = pytest.mark.browser


def test_admin_logs_in_toggles_theme_and_logs_out(page, login, site_url):
    login(page, "admin1", "admin123")

    expect(page.get_by_test_id("dashboard-title")).to_have_text("Dashboard")
    expect(page).to_have_title(re.compile(r"^Dashboard · "))
    expect(page.get_by_test_id("current-user")).to_have_text("Ada Admin")
    expect(page.locator(".topbar .user")).to_contain_text("Admin")
    expect(page.get_by_test_id("system-status")).to_be_visible()
    screenshot(page, "shell-dashboard-dark")

    html = page.locator("html")
    expect(html).to_have_attribute("data-theme", "dark")
    page.locator("#theme-toggle").click()
    expect(html).to_have_attribute("data-theme", "light")
    expect(page.locator("#theme-toggle")).to_have_attribute("aria-pressed", "true")
    page.reload()
    expect(html).to_have_attribute("data-theme", "light")
    expect(page.locator("#theme-toggle")).to_have_attribute("aria-pressed", "true")
    screenshot(page, "shell-dashboard-light")

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(site_url("/accounts/login/"))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.goto(site_url("/"))
    expect(page).to_have_url(site_url("/accounts/login/?next=/"))


def test_wrong_password_shows_the_error_on_the_login_page(page, demo_data, site_url):
    page.goto(site_url("/accounts/login/"))
    page.get_by_label("Username").fill("admin1")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()

    expect(page).to_have_url(site_url("/accounts/login/"))
    expect(page.get_by_role("alert")).to_contain_text("correct username and password")
    expect(page.get_by_label("Username")).to_have_value("admin1")
    expect(page.get_by_test_id("current-user")).to_have_count(0)


def test_token_secret_is_shown_once_listed_and_revocable(page, login, site_url):
    login(page, "artist1", "artist123")
    page.get_by_role("link", name="API tokens").click()
    expect(page.get_by_role("heading", name="API tokens", level=1)).to_be_visible()
    expect(page.get_by_text("No tokens yet.")).to_be_visible()

    page.get_by_label("Name").fill("Houdini on ws-042")
    page.get_by_role("button", name="Create token").click()

    secret = page.get_by_test_id("new-token")
    expect(secret).to_have_text(re.compile(r"\S{20,}"))
    # Swapped in by HTMX: no navigation, and the form is blank again for the next token.
    expect(page).to_have_url(site_url("/accounts/tokens/"))
    expect(page.get_by_label("Name")).to_have_value("")
    row = page.get_by_role("row", name=re.compile("Houdini on ws-042"))
    expect(row).to_have_count(1)
    prefix = row.locator("td.mono").inner_text().rstrip("…")
    assert secret.inner_text().startswith(prefix)
    screenshot(page, "shell-token-created")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == secret.inner_text()

    # A refused create (same name) shows its error in place instead of swallowing the 400.
    page.get_by_label("Name").fill("Houdini on ws-042")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#token-panel .errorlist")).to_contain_text("already have a token")
    expect(page.get_by_test_id("new-token")).to_have_count(0)

    page.reload()
    expect(page.get_by_test_id("new-token")).to_have_count(0)
    # Revoking asks first, naming the token; saying no sends nothing.
    dialogs, revokes = [], []
    page.on("request", lambda r: revokes.append(r.url) if "/revoke/" in r.url else None)
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    row.get_by_role("button", name="Revoke").click()
    expect(row).to_have_count(1)
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke").click()
    expect(page.locator(".messages")).to_contain_text("revoked")
    assert "Houdini on ws-042" in dialogs[0]
    assert len(revokes) == 1
    expect(page.get_by_role("row", name=re.compile("Houdini on ws-042"))).to_have_count(0)
    expect(page.get_by_text("No tokens yet.")).to_be_visible()


def test_project_search_filters_in_place_and_updates_the_url(page, login, site_url):
    login(page, "admin1", "admin123")
    page.goto(site_url("/projects/"))
    rows = page.locator("#results tbody tr")
    search = page.get_by_role("searchbox", name="Search")
    expect(rows).to_have_count(2)
    # Mark the document: a full page load would lose the mark, an HTMX swap keeps it.
    page.evaluate("document.body.dataset.loadedOnce = 'yes'")

    search.fill("drag")
    expect(page).to_have_url(site_url("/projects/?q=drag&status="))
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Dragon's Keep")
    expect(page.locator("body")).to_have_attribute("data-loaded-once", "yes")
    search.fill("ep3")
    expect(page).to_have_url(site_url("/projects/?q=ep3&status="))
    expect(rows.first).to_contain_text("Episodic Season 3")
    search.fill("no-such-project")
    expect(page).to_have_url(site_url("/projects/?q=no-such-project&status="))
    expect(page.locator("#results")).to_contain_text("No projects match")
    expect(page.locator("#results")).to_have_count(1)

    # Back, restored from htmx's history cache: results and the search box agree.
    page.go_back()
    expect(page).to_have_url(site_url("/projects/?q=ep3&status="))
    expect(rows).to_have_count(1)
    expect(search).to_have_value("ep3")
    # Back again with the cache gone: htmx refetches the URL, which must be a whole page.
    page.evaluate("sessionStorage.removeItem('htmx-history-cache')")
    page.go_back()
    expect(page).to_have_url(site_url("/projects/?q=drag&status="))
    expect(rows).to_have_count(1)
    expect(page.get_by_role("heading", name="Projects", level=1)).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(search).to_have_value("drag")


def test_artist_sees_no_administration_section(page, login, site_url):
    login(page, "artist1", "artist123")
    expect(page.get_by_test_id("current-user")).to_have_text("Ava Artist")
    nav = page.locator(".sidebar nav")
    expect(nav.get_by_role("link", name="Projects")).to_be_visible()
    expect(nav).not_to_contain_text("Administration")
    expect(nav.get_by_role("link", name="Audit log")).to_have_count(0)
    expect(page.get_by_test_id("system-status")).to_have_count(0)

    page.goto(site_url("/audit/"))
    expect(page.locator(".error-page .code")).to_have_text("403")


@pytest.mark.parametrize("path", ["/", "/projects/", "/projects/dragon/", "/accounts/tokens/"])
def test_narrow_window_keeps_the_page_in_view(page, login, site_url, path):
    """At 800px the sidebar folds into a bar above the page and nothing scrolls sideways."""
    page.set_viewport_size({"width": 800, "height": 900})
    login(page, "admin1", "admin123")
    page.goto(site_url(path))

    heading = page.locator("main h1").first
    expect(heading).to_be_in_viewport()
    assert page.locator(".sidebar").bounding_box()["height"] < 200
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 800px"
    screenshot(page, f"shell-narrow{path.replace('/', '-').rstrip('-') or '-home'}")
