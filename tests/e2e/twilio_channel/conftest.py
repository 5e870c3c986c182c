"""Fixtures and helpers for the Twilio end-to-end tests (one server for all of them): a fake
Twilio on loopback and a commhub
server configured to use it, sitting behind a (simulated) reverse proxy at a public URL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.postgres import Database
from tests.e2e.api_support import Api, demo_login, phone_number, wait_for
from tests.e2e.conftest import Server, start_server, stop_server
from tests.fake_twilio import FakeTwilio, Received

PUBLIC = "https://hub.example.test"


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeTwilio]:
    twilio = FakeTwilio(hang_seconds=3).start()
    yield twilio
    twilio.stop()


@pytest.fixture(scope="session")
def twilio_server(tmp_path_factory: pytest.TempPathFactory, server_url: str, session_kek: str,
                  fake: FakeTwilio) -> Iterator[Server]:
    database = Database(server_url, f"test_{uuid.uuid4().hex[:12]}")
    database.ensure_schema()
    env = {"DATABASE_URL": database.url, "COMMHUB_DB_SCHEMA": database.schema, "COMMHUB_KEK": session_kek,
           **fake.env(), "COMMHUB_PUBLIC_URL": PUBLIC, "COMMHUB_OUTBOX_BASE_DELAY": "0.05",
           "COMMHUB_OUTBOX_MAX_ATTEMPTS": "3", "COMMHUB_TWILIO_TIMEOUT": "1"}
    server = start_server(tmp_path_factory.mktemp("twilio"), env, "--demo")
    fake.proxy = (PUBLIC, server.url)
    yield server
    stop_server(server)
    database.drop_schema()


@pytest.fixture
def owner(twilio_server: Server) -> Iterator[Api]:
    api = demo_login(twilio_server)
    yield api
    api.close()


@pytest.fixture
def number(owner: Api) -> str:
    """A Twilio number of our own, attached to the demo workspace."""
    twilio_number = phone_number()
    settings = owner.ok("POST", "/api/v1/sms/numbers", {"number": twilio_number})
    assert twilio_number in settings["numbers"]
    return twilio_number


def unique_text(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def conversation_with(api: Api, preview: str, channel: str = "sms") -> dict[str, Any]:
    """The conversation whose latest message reads ``preview`` (waits for the read model)."""
    def find() -> dict[str, Any] | None:
        rows = api.ok("GET", f"/api/v1/conversations?view=all&channel={channel}&limit=200")["items"]
        return next((row for row in rows if row["preview"] == preview), None)

    return wait_for(find, what=f"a {channel} conversation showing the message")


def texted_in(api: Api, fake: FakeTwilio, number: str, body: str, sender: str | None = None) -> dict[str, Any]:
    """A customer texts the workspace's number; returns the conversation it lands in."""
    response = fake.inbound_sms(PUBLIC, sender=sender or phone_number(), to=number, body=body)
    assert response.status_code == 200, response.text
    return conversation_with(api, body)


def sent_to(fake: FakeTwilio, to: str) -> list[Received]:
    return [r for r in fake.messages() if r.form.get("To") == to]


def message(api: Api, conversation_id: str, message_id: str) -> dict[str, Any] | None:
    return next((m for m in api.messages(conversation_id) if m["message_id"] == message_id), None)


def status_is(api: Api, conversation_id: str, message_id: str, status: str) -> Any:
    def check() -> dict[str, Any] | None:
        found = message(api, conversation_id, message_id)
        return found if found and found["status"] == status else None

    return wait_for(check, what=f"message status {status}")
