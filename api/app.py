"""The FastAPI application: built by ``create_app``; ``bootstrap`` runs in its lifespan."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

from fastapi import FastAPI, Request

from api import problems
from api.bootstrap import Hub, bootstrap
from api.settings import Settings


def create_app(
    settings: Settings | None = None, *, demo: bool = False, on_ready: Callable[[Any], None] | None = None
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub = bootstrap(settings or Settings.from_env())
        app.state.hub = hub
        if demo:
            from api.demo import seed_demo

            app.state.demo_login = seed_demo(hub)
        if on_ready is not None:
            on_ready(getattr(app.state, "demo_login", None))
        try:
            yield
        finally:
            hub.close()

    app = FastAPI(title="commhub", version="0.1.0", lifespan=lifespan)
    problems.install(app)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    def readyz(request: Request) -> dict[str, str]:
        hub: Hub = request.app.state.hub
        with hub.database.connect() as conn:
            conn.execute("SELECT 1")
        return {"status": "ready"}

    return app
