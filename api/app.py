"""The FastAPI application: built by ``create_app``; ``bootstrap`` runs in its lifespan."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api import problems
from api.bootstrap import Hub, bootstrap
from api.live import LiveFeed
from api.routes import agent_socket, auth, contacts, conversations, sandbox
from api.routes import settings as settings_routes
from api.settings import Settings

STATIC = Path(__file__).parent / "static"
MAX_BODY_BYTES = 1_000_000


def create_app(
    settings: Settings | None = None, *, demo: bool = False, on_ready: Callable[[Any], None] | None = None
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub = bootstrap(settings or Settings.from_env()).start_workers()
        app.state.hub = hub
        app.state.live = LiveFeed(hub.app, hub.database).start(asyncio.get_running_loop())
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

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return problems.problem(413, "Request body is too large", f"at most {MAX_BODY_BYTES} bytes")
        return await call_next(request)

    for module in (auth, contacts, conversations, settings_routes, sandbox, agent_socket):
        app.include_router(module.router)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    def readyz(request: Request) -> dict[str, str]:
        hub: Hub = request.app.state.hub
        with hub.database.connect() as conn:
            conn.execute("SELECT 1")
        return {"status": "ready"}

    @app.get("/", include_in_schema=False)
    def inbox_page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
