"""The FastAPI application: built by ``create_app``; ``bootstrap`` runs in its lifespan."""

from __future__ import annotations

import asyncio
import hmac
import re
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import anyio.to_thread
import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from fastapi.staticfiles import StaticFiles

from api import logs, problems
from api.bootstrap import Hub, bootstrap
from api.live import LiveFeed
from api.audit_trail import AuditMiddleware
from api.deps import OUTBOUND_THREADS
from api.read_your_writes import ReadYourWrites
from api.runtime import freeze_start_up_heap
from api.worker_process import WorkerProcess
from api.email_setup import start_listener
from api.metrics import Metrics, timed
from api.routes import (agent_socket, appointments, audit, auth, calendar, contacts, conversations, email,
                        fhir_writeback, minors, privacy, reminder_policies, replay, sandbox, sms_settings, twilio,
                        unsubscribe, widget_admin, widget_socket)
from api.routes import api_keys as api_key_routes
from api.routes import webhooks as webhook_routes
from api.routes import caldav as caldav_routes
from api.routes import settings as settings_routes
from api.routes import meta, meta_accounts, social
from api.settings import Settings
from api.widget_gateway import WidgetGateway

STATIC = Path(__file__).parent / "static"


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413, whether or not they declare a length."""

    def __init__(self, app: Any, limit: int, exempt: tuple[str, ...] = ()) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt  # paths that enforce a limit of their own (inbound email)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt:
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



REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


class RequestContext:
    """Gives every HTTP request an id (the caller's ``X-Request-ID`` when well formed), echoes it in
    the answer and in every log line written while serving it, and times the request for /metrics."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        current = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        token = logs.request_id.set(current)

        async def with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", current.encode())]}
            await send(message)

        noting, done = timed(self.metrics, scope, with_id)
        try:
            await self.app(scope, receive, noting)
        finally:
            done()
            logs.request_id.reset(token)


class SecurityHeaders:
    """Adds the security and caching headers to every HTTP answer (plain ASGI: no extra task per request)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        page = path in ("/", "/audit") or path.startswith("/static/")
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
    settings: Settings | None = None, *, demo: bool = False, on_ready: Callable[[Any], None] | None = None,
    long_running: bool = False,
) -> FastAPI:
    """The ASGI app; ``long_running`` (``commhub serve``) also tunes the process for serving for days."""
    config = settings or Settings.from_env()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub = bootstrap(config)
        # Sync routes run in this many threads (anyio's default is 40): every running thread contends
        # for the GIL with the event loop and the live feed (docs/decisions.md, 29). Work that waits
        # on another server has a pool of its own (api/deps.py:outbound_call).
        anyio.to_thread.current_default_thread_limiter().total_tokens = config.request_threads
        app.state.outbound_limiter = anyio.CapacityLimiter(OUTBOUND_THREADS)
        worker = None
        if config.workers == "on":
            hub.start_workers()
        elif config.workers == "process":
            worker = WorkerProcess(config, hub.database).start()
        app.state.hub = hub
        hub.tokens.start()  # caches token lookups while it listens for revocations
        listener = start_listener(hub.settings, hub.extras["email"])
        app.state.live = LiveFeed(hub.app, hub.database, hub.projections if hub.running else None).start(
            asyncio.get_running_loop())
        hub.follower = app.state.live.reached
        app.state.widget = widget = WidgetGateway(hub, app.state.live)
        metrics.watch(hub, lambda: {"agent": app.state.live.connections - widget.subscriptions,
                                    "widget": widget.connections})
        if demo:
            from api.demo import seed_demo

            app.state.demo_login = await asyncio.to_thread(seed_demo, hub)
        if on_ready is not None:
            on_ready(getattr(app.state, "demo_login", None))
        if long_running:
            freeze_start_up_heap()
        try:
            yield
        finally:
            app.state.live.stop()
            if worker is not None:
                worker.stop()
            hub.tokens.stop()
            if listener is not None:
                listener.stop()
            hub.close()

    # FastAPI's built-in OpenTelemetry stays off: we export nothing through it (/metrics is ours), and
    # left on it asks OpenTelemetry for its providers (reading the environment) on every request.
    app = FastAPI(title="commhub", version="0.1.0", lifespan=lifespan,
                  telemetry={"tracing": False, "metrics": False, "logs": False},
                  description="Self-hosted communications hub. Errors are application/problem+json.")
    problems.install(app)

    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES, exempt=(email.INBOUND_PATH,))
    app.add_middleware(AuditMiddleware)
    app.add_middleware(ReadYourWrites)  # outside the audit: awaits the projections as the answer starts
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestContext, metrics=metrics)  # outermost: times and tags everything inside

    # Routes are matched in order, one by one: the inbound paths (providers' webhooks, the sandbox) come first.
    for module in (twilio, meta, email, sandbox, auth, contacts, conversations, settings_routes, agent_socket,
                   appointments, reminder_policies, calendar, fhir_writeback, unsubscribe, sms_settings, replay,
                   minors, privacy, audit, widget_admin, widget_socket, meta_accounts, social,
                   api_key_routes, webhook_routes):
        app.include_router(module.router)
    app.include_router(caldav_routes.router)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    def readyz(request: Request) -> Any:
        """Ready for traffic: the database answers, read models are within the lag bound, and the
        key vault can wrap and unwrap a data key."""
        hub: Hub = request.app.state.hub
        try:
            with hub.database.connect(connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            behind = hub.projections.behind()
        except psycopg.Error:
            return problems.problem(503, "Not ready", "the database cannot be reached")
        if behind > config.ready_max_lag:
            return problems.problem(503, "Not ready", f"read models are {behind} events behind")
        if not hub.vault.usable():
            return problems.problem(503, "Not ready", "the key vault cannot unwrap data keys")
        return {"status": "ready", "projection_lag": behind}

    @app.get("/metrics", include_in_schema=False)
    def metrics_page(request: Request) -> Response:
        if config.metrics_token is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {config.metrics_token}".encode()):
                return problems.problem(401, "Not authenticated", "send the metrics token as a bearer token")
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    def inbox_page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/audit", include_in_schema=False)
    def audit_page() -> FileResponse:
        return FileResponse(STATIC / "audit.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
