"""The contact panel of the inbox page flags a minor, in headless Chromium against a real demo server."""

from __future__ import annotations

from datetime import datetime, timezone

from playwright.sync_api import expect

from tests.e2e.api_support import demo_credentials, demo_login, phone_number
from tests.e2e.test_inbox_page import browser_page  # noqa: F401  (fixture)


def test_the_contact_panel_shows_a_minor_flag_and_the_date_of_birth(demo_server, browser_page):  # noqa: F811
    page, errors = browser_page
    born = datetime.now(timezone.utc).date().replace(month=1, day=1, year=datetime.now(timezone.utc).year - 12)
    phone = phone_number()
    with demo_login(demo_server) as owner:
        owner.ok("PUT", "/api/v1/settings/minors", {"enabled": True})
        owner.ok("POST", "/api/v1/contacts", {"name": "Milo Minor", "phone": phone, "date_of_birth": born.isoformat()})
        owner.inbound(phone, "Can my mum book me in for Monday?")
        owner.inbound(phone_number(), "Adult question about parking", name="Greta Grownup")
    login = demo_credentials(demo_server)

    page.goto(demo_server.url)
    page.get_by_label("Workspace").fill(login["workspace_slug"])
    page.get_by_label("Email", exact=True).fill(login["email"])
    page.get_by_label("Password").fill(login["password"])
    page.get_by_role("button", name="Sign in").click()

    rows = page.locator("#conversation-list .conversation")
    rows.filter(has_text="Milo Minor").click()
    expect(page.locator("#contact-flags")).to_contain_text("Minor")
    expect(page.locator("#contact-profile")).to_contain_text(born.isoformat())
    rows.filter(has_text="Greta Grownup").click()
    expect(page.locator("#contact-name")).to_have_text("Greta Grownup")
    expect(page.locator("#contact-flags")).not_to_contain_text("Minor")
    assert errors == []
