"""Helpers for the API end-to-end tests: logged-in clients, waiting for a condition, a second
workspace in a running server's database, and the routes the server itself publishes."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.e2e.conftest import Server, start_server, stop_server

T = TypeVar("T")
PROBLEM = "application/problem+json"


def wait_for(condition: Callable[[], T | None], *, timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    interval = 0.02
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
        interval = min(interval * 2, 0.25)


class Api:
    """An HTTP client for one server, optionally logged in as one staff member."""

    def __init__(self, url: str, token: str | None = None, *, me: dict[str, Any] | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url
        self.token = token
        self.me = me or {}
        self.http = httpx.Client(base_url=url, headers=headers, timeout=15)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        return self.http.post(path, json=json, **kwargs)

    def patch(self, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        return self.http.patch(path, json=json, **kwargs)

    def ok(self, method: str, path: str, json: Any = None, **kwargs: Any) -> Any:
        """The JSON of a request that must succeed (2xx)."""
        response = self.http.request(method, path, json=json, **kwargs)
        assert response.is_success, f"{method} {path} -> {response.status_code} {response.text[:500]}"
        return response.json() if response.content else None

    def inbound(self, sender: str, body: str, **extra: Any) -> dict[str, Any]:
        """A customer writes in through the sandbox channel."""
        return self.ok("POST", "/api/v1/sandbox/inbound", {"from": sender, "body": body, **extra})

    def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        return self.ok("GET", f"/api/v1/conversations/{conversation_id}/messages")["items"]

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def login(url: str, workspace: str, email: str, password: str) -> Api:
    credentials = {"workspace": workspace, "email": email, "password": password}
    response = httpx.post(f"{url}/api/v1/auth/login", json=credentials, timeout=15)
    assert response.status_code == 200, f"login failed: {response.status_code} {response.text[:300]}"
    body = response.json()
    return Api(url, body["token"], me=body)


def demo_credentials(server: Server) -> dict[str, str]:
    return json.loads((server.data_dir / "demo-login.json").read_text())


def demo_login(server: Server, url: str | None = None) -> Api:
    """The demo owner, logged in on ``server`` (or on another server sharing its database)."""
    credentials = demo_credentials(server)
    return login(url or server.url, credentials["workspace_slug"], credentials["email"], credentials["password"])


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def phone_number(n: int | None = None) -> str:
    """A valid UK mobile number in E.164, random unless ``n`` is given."""
    n = uuid.uuid4().int % 1_000_000 if n is None else n
    return f"+447400{n:06d}"


def assert_problem(response: httpx.Response, status: int | None = None) -> dict[str, Any]:
    """An RFC 9457 answer: problem+json with a title and the same status in the body."""
    assert response.headers.get("content-type", "").startswith(PROBLEM), (
        f"{response.request.method} {response.request.url.path} -> {response.status_code} "
        f"{response.headers.get('content-type')}: {response.text[:300]}"
    )
    body = response.json()
    assert body["status"] == response.status_code and body["title"]
    if status is not None:
        assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text[:300]}"
    return body


@contextmanager
def serving_demo(data_dir: Path, server_url: str, kek: str, **settings: str) -> Iterator[Server]:
    """``commhub serve --demo`` in a schema of its own, for a module of tests that share one server
    (``settings``: more environment, e.g. ``COMMHUB_CALDAV_ALLOW_PRIVATE="on"``)."""
    from adapters.postgres import Database

    database = Database(server_url, f"test_{uuid.uuid4().hex[:12]}")
    database.ensure_schema()
    env = {"DATABASE_URL": database.url, "COMMHUB_DB_SCHEMA": database.schema, "COMMHUB_KEK": kek, **settings}
    server = start_server(data_dir, env, "--demo")
    try:
        yield server
    finally:
        stop_server(server)
        database.drop_schema()


# A second workspace in the same database --------------------------------------------------------------


def add_workspace(server: Server, data_dir: Path, *, name: str, slug: str, email: str, password: str) -> Api:
    """Create a workspace and its owner directly through the application (there is no signup API),
    then log in on ``server`` once its projections have caught up."""
    from adapters.passwords import hash_password
    from adapters.postgres import Database
    from api.bootstrap import bootstrap
    from api.settings import Settings

    env = server.env
    settings = Settings(database_url=env["DATABASE_URL"], db_schema=env["COMMHUB_DB_SCHEMA"], data_dir=data_dir,
                        kek=env["COMMHUB_KEK"])
    now = datetime.now(UTC)
    with bootstrap(settings, database=Database(env["DATABASE_URL"], env["COMMHUB_DB_SCHEMA"])) as hub:
        workspace_id = hub.app.create_workspace(workspace_id=uuid.uuid4(), name=name, slug=slug,
                                                time_zone="Europe/Paris", now=now)
        hub.app.add_staff(workspace_id=workspace_id, staff_id=uuid.uuid4(), name=f"{name} Owner", email=email,
                          role="owner", password_hash=hash_password(password), now=now)

    def logged_in() -> Api | None:
        response = httpx.post(f"{server.url}/api/v1/auth/login",
                              json={"workspace": slug, "email": email, "password": password}, timeout=15)
        if response.status_code != 200:
            return None
        return Api(server.url, response.json()["token"], me={**response.json(), "workspace_slug": slug})

    return wait_for(logged_in, timeout=15, what="the new workspace's owner to be able to log in")


# The routes the server publishes ------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any]
    components: dict[str, Any]

    @property
    def path_params(self) -> list[str]:
        return [p["name"] for p in self.spec.get("parameters", []) if p["in"] == "path"]

    @property
    def query_params(self) -> list[dict[str, Any]]:
        return [p for p in self.spec.get("parameters", []) if p["in"] == "query"]

    @property
    def body_schema(self) -> dict[str, Any] | None:
        content = self.spec.get("requestBody", {}).get("content", {})
        schema = content.get("application/json", {}).get("schema")
        return self.resolve(schema) if schema else None

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.components["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    def url(self, values: dict[str, str]) -> str:
        path = self.path
        for name in self.path_params:
            path = path.replace("{" + name + "}", values.get(name, str(uuid.uuid4())))
        return path

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def operations(url: str) -> list[Operation]:
    spec = httpx.get(f"{url}/openapi.json", timeout=15).json()
    components = spec.get("components", {})
    found = [
        Operation(method.upper(), path, op, components)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert found, "the server publishes no routes"
    return found


def example(op: Operation, schema: dict[str, Any] | None, uuids: Callable[[str], str], field: str = "") -> Any:
    """A value valid for ``schema`` (as far as the schema can say); uuid fields come from ``uuids(field)``."""
    if schema is None:
        return None
    schema = op.resolve(schema)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema or "oneOf" in schema:
        options = [op.resolve(s) for s in schema.get("anyOf", schema.get("oneOf"))]
        options = [s for s in options if s.get("type") != "null"] or options
        return example(op, options[0], uuids, field)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {name: example(op, sub, uuids, name) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [example(op, schema.get("items", {}), uuids, field)]
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        return max(schema.get("minimum", 1), 1)
    fmt = schema.get("format")
    if fmt == "uuid":
        return uuids(field)
    if fmt == "date-time":
        return "2031-01-02T03:04:05+00:00"
    if fmt == "date":
        return "2001-02-03"
    if "email" in field:
        return f"{unique('someone')}@example.com"
    if field in ("from", "sender", "phone"):
        return phone_number()
    if field == "password":
        return "a long enough password"
    if field == "default_region":
        return "GB"
    if field == "time_zone":
        return "Europe/London"
    if field == "workspace":
        return "demo"
    text = unique(field or "value")
    return text[: schema.get("maxLength", len(text))].ljust(schema.get("minLength", 0), "x")


def garbage_values() -> Iterator[Any]:
    """Values of the wrong type, size or shape, for any field."""
    yield from (None, -1, 2**70, 1.5e308, True, "", "x" * 5000, "a\x00b", "\ud7ff\ufffd", "../../etc/passwd",
                "' OR 1=1 --", [1, 2], {"$ne": None}, "9999-99-99T99:99:99")


# The agent websocket ----------------------------------------------------------------------------------


class AgentSocket:
    """An agent's live connection to ``/ws/agent`` that remembers the last position it saw,
    so it can reconnect with ``after`` the way the inbox page does."""

    def __init__(self, url: str, token: str, *, batch: bool = False) -> None:
        self.url = url.replace("http://", "ws://", 1) + "/ws/agent"
        self.token = token
        self.batch = batch  # asks for updates published together in one frame, as the inbox page does
        self.position: int | None = None
        self.ready: dict[str, Any] | None = None
        self.connection: ClientConnection | None = None
        self.frames: list[int] = []  # how many updates each live frame carried
        self._pending: list[dict[str, Any]] = []

    async def connect(self, after: int | None = None, *, timeout: float = 10) -> list[dict[str, Any]]:
        """Connect and say hello; returns the updates replayed before ``ready``."""
        self.connection = await asyncio.wait_for(connect(self.url, open_timeout=timeout), timeout)
        hello: dict[str, Any] = {"token": self.token}
        if self.batch:
            hello["batch"] = True
        if after is not None:
            hello["after"] = after
        await self.connection.send(json.dumps(hello))
        replayed: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            while True:
                update = json.loads(await self.connection.recv())
                if update["type"] == "ready":
                    self.ready = update
                    self.position = max(self.position or 0, update["position"])
                    return replayed
                replayed.append(self._seen(update))

    async def reconnect(self, *, timeout: float = 10) -> list[dict[str, Any]]:
        await self.close()
        return await self.connect(after=self.position, timeout=timeout)

    async def receive(self, timeout: float) -> dict[str, Any]:
        assert self.connection is not None
        if not self._pending:
            frame = json.loads(await asyncio.wait_for(self.connection.recv(), timeout))
            self._pending = frame["updates"] if frame["type"] == "batch" else [frame]
            self.frames.append(len(self._pending))
        return self._seen(self._pending.pop(0))

    async def collect(self, done: Callable[[list[dict[str, Any]]], bool], timeout: float) -> list[dict[str, Any]]:
        """Live updates, until ``done(updates so far)`` is true; fails after ``timeout`` seconds."""
        updates: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(timeout):
                while not done(updates):
                    updates.append(await self.receive(timeout))
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout}s; received {[u['type'] for u in updates]}") from None
        return updates

    async def close(self) -> None:
        self._pending = []  # what a reconnect replays comes from the server, not from the old frame
        if self.connection is not None:
            await self.connection.close()
            self.connection = None

    def _seen(self, update: dict[str, Any]) -> dict[str, Any]:
        if "position" in update:  # typing indicators have none
            self.position = max(self.position or 0, update["position"])
        return update


def bodies_received(updates: list[dict[str, Any]]) -> list[str]:
    return [u["body"] for u in updates if u["type"] == "conversation.message_received"]
