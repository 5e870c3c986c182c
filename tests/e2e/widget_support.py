"""Helpers for the widget's end-to-end tests: a server with the widget set up, and a visitor's
websocket client speaking the widget protocol."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from domain.widget_identity import sign_identity
from tests.e2e.api_support import Api, demo_login
from tests.e2e.conftest import Server, start_server, stop_server

HOST_ORIGIN = "http://127.0.0.1:9"  # the embedding site (the browser test serves a real one)


@contextmanager
def widget_server(data_dir: Path, server_url: str, kek: str, **env: str) -> Iterator[Server]:
    """``commhub serve --demo`` in a schema of its own, with extra environment."""
    from adapters.postgres import Database

    database = Database(server_url, f"test_{uuid.uuid4().hex[:12]}")
    database.ensure_schema()
    environment = {"DATABASE_URL": database.url, "COMMHUB_DB_SCHEMA": database.schema, "COMMHUB_KEK": kek, **env}
    server = start_server(data_dir, environment, "--demo")
    try:
        yield server
    finally:
        stop_server(server)
        database.drop_schema()


def set_up_widget(owner: Api, origins: list[str], privacy: str | None = "https://clinic.example/privacy") -> dict[str, Any]:
    return owner.ok("PUT", "/api/v1/widget", {"allowed_origins": origins, "privacy_policy_url": privacy})


def signed(secret: str, user_id: str, lifetime: int = 600) -> dict[str, Any]:
    expires = int(time.time()) + lifetime
    return {"user_id": user_id, "expires": expires, "signature": sign_identity(secret, user_id, expires)}


class Visitor:
    """A visitor's widget connection: hello, then frames; remembers its token and last position."""

    def __init__(self, server: Server, public_key: str, origin: str = HOST_ORIGIN) -> None:
        self.url = server.url.replace("http://", "ws://", 1) + f"/ws/widget/{public_key}"
        self.origin = origin
        self.token: str | None = None
        self.position = 0
        self.ready: dict[str, Any] | None = None
        self.connection: ClientConnection | None = None

    async def open(self, *, after: int | None = None, identity: dict[str, Any] | None = None,
                   timeout: float = 10) -> list[dict[str, Any]]:
        """Connect and say hello; returns the messages replayed before ``ready``."""
        self.connection = await asyncio.wait_for(connect(self.url, origin=self.origin, open_timeout=timeout), timeout)
        hello: dict[str, Any] = {"type": "hello", "after": self.position if after is None else after}
        if identity is not None:
            hello["identity"] = identity
        elif self.token:
            hello["visitor_token"] = self.token
        await self.connection.send(json.dumps(hello))
        replayed = []
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.receive(timeout)
                if frame["type"] == "ready":
                    self.ready = frame
                    return replayed
                replayed.append(frame)

    async def send(self, frame: dict[str, Any]) -> None:
        assert self.connection is not None
        await self.connection.send(json.dumps(frame))

    async def say(self, body: str, client_id: str | None = None) -> dict[str, Any]:
        """Send a message and wait for its ack (the session token is noted on the way)."""
        client_id = client_id or uuid.uuid4().hex
        await self.send({"type": "message", "client_id": client_id, "body": body, "notice_accepted": True})
        return await self.until(lambda f: f["type"] in ("ack", "error") and f.get("client_id") == client_id)

    async def receive(self, timeout: float = 10) -> dict[str, Any]:
        assert self.connection is not None
        frame = json.loads(await asyncio.wait_for(self.connection.recv(), timeout))
        if frame["type"] == "session":
            self.token = frame["visitor_token"]
        if "position" in frame:
            self.position = max(self.position, frame["position"])
        return frame

    async def until(self, wanted: Any, timeout: float = 10) -> dict[str, Any]:
        """The first frame for which ``wanted(frame)`` is true (frames before it are dropped)."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.receive(timeout)
                if wanted(frame):
                    return frame

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()
            self.connection = None


def owner_of(server: Server) -> Api:
    return demo_login(server)
