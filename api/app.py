"""The FastAPI application: built by ``create_app``; ``bootstrap`` runs in its lifespan."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api import problems
from api.bootstrap import Hub, bootstrap
from api.live import LiveFeed
from api.routes import agent_socket, auth, contacts, conversations, sandbox, widget_admin, widget_socket
from api.routes import settings as settings_routes
from api.settings import Settings
from api.widget_gateway import WidgetGateway

STATIC = Path(__file__).parent / "static"


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413, whether or not they declare a length."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await problems.problem(413, "Request body is too large", f"at most {self.limit} bytes")(
                scope, receive, send)
        seen = 0
        refused = False

        async def counting_receive() -> Any:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit and not refused:
                    refused = True
                    await problems.problem(413, "Request body is too large", f"at most {self.limit} bytes")(
                        scope, receive, send)
                if refused:
                    return {"type": "http.disconnect"}  # the app stops reading; its answer is dropped
            return message

        async def guarded_send(message: Any) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:
                raise



class SecurityHeaders:
    """Adds the security and caching headers to every HTTP answer (plain ASGI: no extra task per request)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        page = path == "/" or path.startswith("/static/")
        extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
        if page:
            extra += [(b"content-security-policy", PAGE_POLICY.encode()), (b"cache-control", b"no-cache")]
        else:
            extra.append((b"cache-control", b"no-store"))  # API answers carry personal data

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


MAX_BODY_BYTES = 1_000_000
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; form-action 'none'; base-uri 'none'; object-src 'none'"
)


def create_app(
    settings: Settings | None = None, *, demo: bool = False, on_ready: Callable[[Any], None] | None = None
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub = bootstrap(settings or Settings.from_env()).start_workers()
        app.state.hub = hub
        app.state.live = LiveFeed(hub.app, hub.database).start(asyncio.get_running_loop())
        app.state.widget = WidgetGateway(hub, app.state.live)
        if demo:
            from api.demo import seed_demo

            app.state.demo_login = await asyncio.to_thread(seed_demo, hub)
        if on_ready is not None:
            on_ready(getattr(app.state, "demo_login", None))
        try:
            yield
        finally:
            app.state.live.stop()
            hub.close()

    app = FastAPI(title="commhub", version="0.1.0", lifespan=lifespan,
                  description="Self-hosted communications hub. Errors are application/problem+json.")
    problems.install(app)

    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)

    app.add_middleware(SecurityHeaders)

    for module in (auth, contacts, conversations, settings_routes, sandbox, agent_socket, widget_admin, widget_socket):
        app.include_router(module.router)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    def readyz(request: Request) -> Any:
        hub: Hub = request.app.state.hub
        try:
            with hub.database.connect(connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return problems.problem(503, "Not ready", "the database cannot be reached")
        return {"status": "ready"}

    @app.get("/", include_in_schema=False)
    def inbox_page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
