"""Fixtures and helpers for the Meta end-to-end tests (one server for all of them): a fake Graph
API on loopback that also sends signed webhooks, and a commhub server configured to use it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.postgres import Database
from tests.e2e.api_support import Api, demo_login, wait_for
from tests.e2e.conftest import Server, start_server, stop_server
from tests.fake_meta import FakeMeta

ACCOUNTS = "/api/v1/settings/meta/accounts"


@pytest.fixture(scope="session")
def fake_meta() -> Iterator[FakeMeta]:
    meta = FakeMeta().start()
    yield meta
    meta.stop()


@pytest.fixture(scope="session")
def meta_server(tmp_path_factory: pytest.TempPathFactory, server_url: str, session_kek: str,
                fake_meta: FakeMeta) -> Iterator[Server]:
    database = Database(server_url, f"test_{uuid.uuid4().hex[:12]}")
    database.ensure_schema()
    env = {"DATABASE_URL": database.url, "COMMHUB_DB_SCHEMA": database.schema, "COMMHUB_KEK": session_kek,
           **fake_meta.env(), "COMMHUB_OUTBOX_BASE_DELAY": "0.05", "COMMHUB_OUTBOX_MAX_ATTEMPTS": "4",
           "COMMHUB_META_TIMEOUT": "2"}
    server = start_server(tmp_path_factory.mktemp("meta"), env, "--demo")
    yield server
    stop_server(server)
    database.drop_schema()


@pytest.fixture
def owner(meta_server: Server) -> Iterator[Api]:
    api = demo_login(meta_server)
    yield api
    api.close()


def connect(api: Api, fake: FakeMeta, platform: str) -> str:
    """A new page / Instagram account / WhatsApp number of the fake, connected to the workspace."""
    account_id, token = fake.account(platform)
    api.ok("POST", ACCOUNTS, {"platform": platform, "account_id": account_id, "access_token": token})
    return account_id


def unique_text(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def social_id() -> str:
    return str(uuid.uuid4().int)[:17]


def wa_id() -> str:
    return f"447700{uuid.uuid4().int % 1_000_000:06d}"


def conversation_with(api: Api, preview: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        rows = api.ok("GET", "/api/v1/conversations?view=all&channel=social&limit=200")["items"]
        return next((row for row in rows if row["preview"] == preview), None)

    return wait_for(find, what="a social conversation showing the message")


def status_is(api: Api, conversation_id: str, message_id: str, status: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        found = next((m for m in api.messages(conversation_id) if m["message_id"] == message_id), None)
        return found if found and found["status"] == status else None

    return wait_for(check, what=f"message status {status}")
