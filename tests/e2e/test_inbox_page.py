"""The agent inbox page in headless Chromium against a real demo server: sign in, live updates,
reply, notes, keyboard shortcuts, and resuming the live feed after the socket drops."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, WebSocketRoute, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = ROOT / "test-artifacts" / "inbox.png"

if not CHROMIUM.exists():  # a missing browser is a failed check, never a silent skip
    raise RuntimeError("the inbox page tests need Debian's chromium at /usr/bin/chromium: apt-get install -y chromium")


class SocketTap:
    """Passes the page's agent websocket through unchanged, noting what each side said, and can drop it."""

    def __init__(self) -> None:
        self.hellos: list[dict[str, Any]] = []  # what the page sent on each connection
        self.delivered: list[list[dict[str, Any]]] = []  # what the page was sent, per connection
        self.connections: list[tuple[WebSocketRoute, WebSocketRoute]] = []

    def __call__(self, page_side: WebSocketRoute) -> None:
        server_side = page_side.connect_to_server()
        delivered: list[dict[str, Any]] = []
        self.connections.append((page_side, server_side))
        self.delivered.append(delivered)

        def to_server(message: str | bytes) -> None:
            self.hellos.append(json.loads(message))
            server_side.send(message)

        def to_page(message: str | bytes) -> None:
            frame = json.loads(message)
            delivered.extend(frame["updates"] if frame["type"] == "batch" else [frame])  # the page asks for batches
            page_side.send(message)

        page_side.on_message(to_server)
        server_side.on_message(to_page)

    def drop(self) -> int:
        """Cut the current connection; returns the last position the page was sent on it."""
        page_side, server_side = self.connections[-1]
        server_side.close()
        page_side.close(code=4000, reason="dropped by the test")
        return max(update["position"] for update in self.delivered[-1] if "position" in update)


@pytest.fixture
def browser_page() -> Iterator[tuple[Page, list[str]]]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.set_default_timeout(10_000)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
            page.on("console", lambda message: message.type == "error" and errors.append(f"console: {message.text}"))
            yield page, errors
        finally:
            browser.close()


@pytest.fixture
def demo_login(demo_server) -> dict[str, str]:
    return json.loads((demo_server.data_dir / "demo-login.json").read_text())


@pytest.fixture
def customer(demo_server, demo_login) -> Iterator[httpx.Client]:
    """What the simulated customer uses: the sandbox endpoint, with a token of its own."""
    with httpx.Client(base_url=f"{demo_server.url}/api/v1", timeout=10) as client:
        answer = client.post("/auth/login", json={"workspace": demo_login["workspace_slug"],
                                                  "email": demo_login["email"], "password": demo_login["password"]})
        answer.raise_for_status()
        client.headers["Authorization"] = f"Bearer {answer.json()['token']}"
        yield client


def write_in(api: httpx.Client, sender: str, body: str, name: str | None = None) -> None:
    payload = {"from": sender, "body": body, **({"name": name} if name else {})}
    api.post("/sandbox/inbound", json=payload).raise_for_status()


def test_an_agent_signs_in_sees_messages_arrive_live_replies_and_uses_shortcuts(
    demo_server, demo_login, customer, browser_page,
):
    page, errors = browser_page
    login = demo_login
    tap = SocketTap()
    page.route_web_socket(re.compile(r"/ws/agent$"), tap)

    # Sign in through the form.
    page.goto(demo_server.url)
    page.get_by_label("Workspace").fill(login["workspace_slug"])
    page.get_by_label("Email", exact=True).fill(login["email"])
    page.get_by_label("Password").fill(login["password"])
    page.get_by_role("button", name="Sign in").click()

    # The seeded conversations are listed, and the live feed is up.
    rows = page.locator("#conversation-list .conversation")
    expect(rows).to_have_count(3)
    for name in ("Ada Lovelace", "Grace Hopper", "Alan Turing"):
        expect(rows.filter(has_text=name)).to_have_count(1)
    expect(page.locator("#live-status")).to_have_text("Live")
    ada = rows.filter(has_text="Ada Lovelace")
    expect(ada.locator(".badge")).to_contain_text("1")

    # Opening a conversation shows the thread and the contact; only its id goes in the URL.
    ada.click()
    thread = page.locator("#messages")
    expect(page.locator("#thread-title")).to_have_text("Ada Lovelace")
    expect(thread.locator(".message.in")).to_contain_text("move my Thursday appointment to Friday")
    expect(page.locator("#contact-name")).to_have_text("Ada Lovelace")
    expect(page.locator("#contact-profile")).to_contain_text("+447911123456")
    expect(page.locator("#consents")).to_contain_text("SMS · transactional")
    expect(page.locator("#timeline")).to_contain_text("Consent granted")
    expect(ada.locator(".badge")).to_have_count(0)
    assert re.search(r"#c=[0-9a-f-]{36}$", page.url) and "Ada" not in page.url and "447911" not in page.url

    # A customer writes in: the open thread and the list update without a reload.
    write_in(customer, "+447911123456", "Friday at 10 would be perfect, thanks!")
    expect(thread.locator(".message.in").last).to_have_text(re.compile("Friday at 10 would be perfect"))
    expect(ada).to_contain_text("Friday at 10 would be perfect")

    # A new customer: a new row appears, unread.
    write_in(customer, "+447911000123", "Is there parking near the clinic?", name="Mary Somerville")
    mary = rows.filter(has_text="Mary Somerville")
    expect(mary).to_contain_text("Is there parking near the clinic?")
    expect(mary.locator(".badge")).to_contain_text("1")
    expect(rows.first).to_contain_text("Mary Somerville")

    # Reply through the reply box (r focuses it, Ctrl+Enter sends); the sandbox captures it.
    page.keyboard.press("r")
    reply_box = page.locator("#reply")
    expect(reply_box).to_be_focused()
    reply_box.fill("Friday 10:00 is booked for you. See you then!")
    page.keyboard.press("Control+Enter")
    sent = thread.locator(".message.out").filter(has_text="Friday 10:00 is booked for you")
    expect(sent).to_have_count(1)
    expect(sent).to_contain_text("captured (sandbox)")
    expect(reply_box).to_have_value("")
    expect(ada).to_contain_text("You: Friday 10:00 is booked")
    page.keyboard.press("Escape")
    expect(reply_box).not_to_be_focused()

    # An internal note in the thread, and a note on the contact.
    page.get_by_role("button", name="Internal note").click()
    reply_box.fill("Double-check the Friday slot with the physio.")
    page.locator("#send").click()
    expect(thread.locator(".message.note")).to_contain_text("Double-check the Friday slot")
    page.get_by_role("button", name="Reply", exact=True).click()
    page.get_by_label("Add a note about this contact").fill("Prefers morning appointments.")
    page.locator("#note-form").get_by_role("button", name="Add note").click()
    expect(page.locator("#contact-notes")).to_contain_text("Prefers morning appointments.")
    expect(page.locator("#timeline")).to_contain_text("Note: Prefers morning appointments.")

    # The live feed drops; what is said meanwhile arrives once, after resuming from the last position.
    assert "after" not in tap.hellos[0] and tap.hellos[0]["batch"] is True  # starts from now, batches welcome
    last_seen = tap.drop()
    write_in(customer, "+447911123456", "Sorry, one more thing: can I bring my son?")
    expect(thread.locator(".message.in").filter(has_text="can I bring my son?")).to_have_count(1)
    expect(page.locator("#live-status")).to_have_text("Live")
    assert tap.hellos[1]["after"] == last_seen
    expect(ada).to_contain_text("can I bring my son?")

    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOT)

    # j and k move between conversations; c closes the open one and moves on to the next.
    expect(rows.first).to_contain_text("Ada Lovelace")
    page.keyboard.press("j")
    expect(page.locator("#thread-title")).to_have_text("Mary Somerville")
    expect(mary.locator(".badge")).to_have_count(0)
    page.keyboard.press("k")
    expect(page.locator("#thread-title")).to_have_text("Ada Lovelace")
    page.keyboard.press("j")
    page.keyboard.press("j")
    expect(page.locator("#thread-title")).not_to_have_text(re.compile("Ada Lovelace|Mary Somerville"))
    next_name = page.locator("#thread-title").inner_text()
    assert next_name in ("Grace Hopper", "Alan Turing")
    page.keyboard.press("c")
    expect(rows.filter(has_text=next_name)).to_have_count(0)
    expect(rows).to_have_count(3)
    expect(page.locator("#thread-title")).not_to_have_text(next_name)
    page.get_by_role("button", name="Closed").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(next_name)

    assert errors == []
