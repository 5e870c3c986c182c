"""The chat widget in headless Chromium, embedded with one script tag in a page served from another
origin: pre-chat notice, a message, the agent's reply (through the REST API) and typing arriving
live, everything shown as text, the thread surviving a reload; and the same message shown as text
in the agent's inbox, with the visitor's typing."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect, sync_playwright
from websockets.sync.client import connect

from tests.e2e.api_support import demo_credentials, wait_for
from tests.e2e.conftest import Server
from tests.e2e.widget_support import owner_of, set_up_widget, widget_server

CHROMIUM = Path("/usr/bin/chromium")
HOSTILE = '<img src=x onerror="window.__pwned=1">Hello from the clinic website'
PRIVACY = "https://clinic.example/privacy"

if not CHROMIUM.exists():  # a missing browser is a failed check, never a silent skip
    raise RuntimeError("the widget page test needs Debian's chromium at /usr/bin/chromium: apt-get install -y chromium")


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path, server_url, session_kek) -> Iterator[Server]:
    with widget_server(tmp_path, server_url, session_kek) as running:
        yield running


@pytest.fixture
def host_site(tmp_path) -> Iterator[tuple[str, Path]]:
    """A customer's website: a static server on another loopback port (another origin)."""
    root = tmp_path / "site"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


def test_a_visitor_chats_from_another_origin_and_the_thread_survives_a_reload(server, host_site):
    site, root = host_site
    owner = owner_of(server)
    widget = set_up_widget(owner, [site], PRIVACY)
    (root / "index.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><link rel='icon' href='data:,'><title>Physio Clinic</title></head>"
        f"<body><h1>Physio Clinic</h1>{widget['embed']}</body></html>")

    with connect(server.url.replace("http://", "ws://") + "/ws/agent") as agent_socket, owner:
        agent_socket.send(json.dumps({"token": owner.token}))  # an agent is online
        while json.loads(agent_socket.recv(timeout=10))["type"] != "ready":
            pass
        chat_through_the_widget(server, site, owner)


def chat_through_the_widget(server: Server, site: str, owner: Any) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(10_000)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
            page.on("console", lambda m: m.type == "error" and errors.append(f"console: {m.text}"))
            page.goto(site)

            # The launcher opens the chat; before the first message, the notice and the privacy link.
            page.get_by_role("button", name="Open chat").click()
            chat = page.get_by_role("dialog", name="Chat")
            expect(chat.locator(".status")).to_have_text("We're online")
            expect(chat.locator(".notice-text")).to_contain_text("stored by Demo Clinic")
            expect(chat.get_by_role("link", name="Privacy policy")).to_have_attribute("href", PRIVACY)
            chat.get_by_role("button", name="Start chat").click()

            # A message with markup in it is sent and shown as text.
            chat.get_by_label("Message", exact=True).fill(HOSTILE)
            chat.get_by_label("Message", exact=True).press("Enter")
            mine = chat.locator(".message.mine")
            expect(mine).to_have_text(HOSTILE)
            expect(mine).not_to_have_class("message mine pending")

            conversation_id = wait_for(
                lambda: next(iter(owner.ok("GET", "/api/v1/conversations?view=all&channel=webchat")["items"]), None),
                what="the visitor's conversation in the inbox")["conversation_id"]
            owner.ok("POST", f"/api/v1/conversations/{conversation_id}/typing")
            expect(chat.locator(".typing")).to_be_visible()
            owner.ok("POST", f"/api/v1/conversations/{conversation_id}/reply",
                     {"body": "Welcome! <b>How</b> can we help?"})
            expect(chat.locator(".message.theirs")).to_have_text("Welcome! <b>How</b> can we help?")
            assert page.evaluate("window.__pwned") is None
            assert page.evaluate(
                "document.querySelector('[data-commhub-widget]').shadowRoot.querySelectorAll('img, b').length") == 0

            # A reload: same visitor (token in localStorage), same thread, nothing twice, no notice.
            page.reload()
            page.get_by_role("button", name="Open chat").click()
            expect(chat.locator(".message")).to_have_count(2)
            expect(chat.locator(".message.mine")).to_have_text(HOSTILE)
            expect(chat.locator(".message.theirs")).to_have_text("Welcome! <b>How</b> can we help?")
            expect(chat.locator(".notice")).to_be_hidden()
            stored = page.evaluate("JSON.stringify(localStorage)")
            assert HOSTILE not in stored, "acknowledged messages do not linger in storage"

            # The agent's inbox shows the same message as text, and sees the visitor typing.
            inbox = browser.new_page(viewport={"width": 1440, "height": 900})
            inbox.set_default_timeout(10_000)
            login = demo_credentials(server)
            inbox.goto(server.url)
            inbox.get_by_label("Workspace").fill(login["workspace_slug"])
            inbox.get_by_label("Email", exact=True).fill(login["email"])
            inbox.get_by_label("Password").fill(login["password"])
            inbox.get_by_role("button", name="Sign in").click()
            inbox.locator("#conversation-list .conversation").filter(has_text="Web visitor").click()
            expect(inbox.locator("#messages .message.in .body")).to_have_text(HOSTILE)
            assert inbox.evaluate("document.querySelectorAll('#messages img, #messages b').length") == 0
            chat.get_by_label("Message", exact=True).press_sequentially("Also, ")
            expect(inbox.locator("#typing")).to_be_visible()
            assert errors == []
        finally:
            browser.close()
