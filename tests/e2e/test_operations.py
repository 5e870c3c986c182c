"""Operating the hub: metrics, structured logs with request ids, API and workers as separate
processes, readiness, and a graceful shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from adapters.kek import encode_kek, generate_kek
from adapters.postgres import Database
from tests.e2e.api_support import AgentSocket, assert_problem, demo_credentials, demo_login, phone_number, unique, wait_for
from tests.e2e.conftest import Server, start_server, stop_server
from tests.processes import start_worker


def scrape(server: Server, **headers: str) -> str:
    response = httpx.get(f"{server.url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text[:300]
    return response.text


def metric_value(text: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_give_latency_per_route_outbox_and_projection_figures_and_no_personal_data(demo_server):
    name, phone = unique("Metrica Ollerton"), phone_number()
    with demo_login(demo_server) as owner:
        contact = owner.ok("POST", "/api/v1/contacts", {"name": name, "phone": phone})
        owner.ok("GET", f"/api/v1/contacts/{contact['contact_id']}")
        owner.ok("POST", f"/api/v1/contacts/{contact['contact_id']}/consents",
                 {"channel": "sms", "purpose": "transactional", "granted": True, "source": "front desk",
                  "wording": "Texts about my care"})
        stored = owner.inbound(phone, f"secret body {unique('b')}")
        owner.ok("POST", f"/api/v1/conversations/{stored['conversation_id']}/reply", {"body": "Reply text"})
        wait_for(lambda: metric_value(scrape(demo_server), "commhub_outbox_messages", channel="sms", status="sent"),
                 what="the reply to be delivered")
    text = scrape(demo_server)
    count = metric_value(text, "commhub_http_request_duration_seconds_count",
                         method="GET", route="/api/v1/contacts/{contact_id}", status="200")
    assert count == 1.0
    assert metric_value(text, "commhub_outbox_depth", channel="sms") in (None, 0.0)
    assert metric_value(text, "commhub_outbox_oldest_age_seconds") == 0.0
    assert metric_value(text, "commhub_projection_lag_events", projection="inbox") is not None
    assert metric_value(text, "commhub_websocket_connections", kind="agent") == 0.0
    for secret in (name, phone, phone.lstrip("+"), contact["contact_id"], "secret body", "Reply text"):
        assert secret not in text


def test_a_metrics_token_keeps_metrics_private(tmp_path, fresh_database, session_kek):
    env = {"DATABASE_URL": fresh_database.url, "COMMHUB_DB_SCHEMA": fresh_database.schema,
           "COMMHUB_KEK": session_kek, "COMMHUB_METRICS_TOKEN": "scrape-me-please"}
    server = start_server(tmp_path, env)
    try:
        assert_problem(httpx.get(f"{server.url}/metrics"), 401)
        assert "commhub_http_request_duration_seconds" in scrape(server, Authorization="Bearer scrape-me-please")
    finally:
        stop_server(server)


def test_log_lines_are_json_and_carry_the_callers_request_id(demo_server):
    with demo_login(demo_server) as owner:
        response = owner.get("/api/v1/contacts", headers={"X-Request-ID": "trace-4f2a9c1e"})
        assert response.status_code == 200 and response.headers["x-request-id"] == "trace-4f2a9c1e"
        generated = owner.get("/api/v1/contacts", headers={"X-Request-ID": "bad id with spaces"})
        assert generated.headers["x-request-id"] != "bad id with spaces"
    def access_line() -> dict | None:
        for line in demo_server.log().splitlines():
            if line.startswith("{") and '"trace-4f2a9c1e"' in line:
                return json.loads(line)
        return None
    entry = wait_for(access_line, what="the request's log line")
    assert entry["event"] == "request" and entry["route"] == "/api/v1/contacts" and entry["status"] == 200
    assert entry["level"] == "info" and entry["timestamp"]


@pytest.fixture
def api_and_worker(tmp_path: Path, fresh_database: Database, session_kek: str) -> Iterator[tuple[Server, Path]]:
    env = {"DATABASE_URL": fresh_database.url, "COMMHUB_DB_SCHEMA": fresh_database.schema,
           "COMMHUB_KEK": session_kek}
    server = start_server(tmp_path, env, "--demo", "--no-workers")
    worker = start_worker(tmp_path, env, wait=False)
    credentials = demo_credentials(server)
    # the staff directory login reads is a projection: it exists once the worker has caught up
    wait_for(lambda: httpx.post(f"{server.url}/api/v1/auth/login", timeout=10, json={
        "workspace": credentials["workspace_slug"], "email": credentials["email"],
        "password": credentials["password"]}).status_code == 200, timeout=60, what="the worker to catch up")
    yield server, tmp_path
    try:
        assert worker.stop() == 0, worker.log()[-2000:]
    finally:
        stop_server(server)


def test_an_api_without_workers_serves_what_a_separate_worker_projects_and_delivers(api_and_worker):
    server, _ = api_and_worker
    phone = phone_number()
    with demo_login(server) as owner:
        stored = owner.inbound(phone, "Is parking available?")  # answers once the worker has projected it
        inbox = owner.ok("GET", "/api/v1/conversations", params={"view": "all"})["items"]
        assert stored["conversation_id"] in [c["conversation_id"] for c in inbox]
        owner.ok("POST", f"/api/v1/contacts/{stored['contact_id']}/consents",
                 {"channel": "sms", "purpose": "transactional", "granted": True, "source": "front desk",
                  "wording": "Texts about my care"})
        reply = owner.ok("POST", f"/api/v1/conversations/{stored['conversation_id']}/reply",
                         {"body": "Yes, behind the clinic."})
        def delivered() -> bool:
            messages = owner.messages(stored["conversation_id"])
            return any(m["message_id"] == reply["message_id"] and m["status"] == "captured" for m in messages)
        wait_for(delivered, timeout=15, what="the worker to deliver the reply")


def test_sigterm_closes_agent_websockets_with_1012_and_the_server_exits_cleanly(demo_server):
    with demo_login(demo_server) as owner:
        token = owner.token

    async def scenario() -> int | None:
        socket = AgentSocket(demo_server.url, token)
        await socket.connect()
        demo_server.process.send_signal(signal.SIGTERM)
        try:
            await socket.receive(timeout=15)
        except Exception as closed:  # websockets raises ConnectionClosed carrying the close frame
            frame = getattr(closed, "rcvd", None)
            return frame.code if frame is not None else None
        return None

    assert asyncio.run(scenario()) == 1012
    # uvicorn finishes its shutdown, then re-raises the signal: -SIGTERM is the clean exit status
    assert demo_server.process.wait(timeout=30) == -signal.SIGTERM
    assert "Application shutdown complete" in demo_server.log() and "Traceback" not in demo_server.log()


def test_readyz_refuses_traffic_when_the_kek_cannot_open_the_stored_keys(tmp_path, fresh_database, session_kek):
    env = {"DATABASE_URL": fresh_database.url, "COMMHUB_DB_SCHEMA": fresh_database.schema, "COMMHUB_KEK": session_kek}
    (tmp_path / "right").mkdir()
    (tmp_path / "wrong").mkdir()
    server = start_server(tmp_path / "right", env, "--demo")
    stop_server(server)
    wrong = start_server(tmp_path / "wrong", {**env, "COMMHUB_KEK": encode_kek(generate_kek())}, ready_path="/healthz")
    try:
        body = assert_problem(httpx.get(f"{wrong.url}/readyz", timeout=10), 503)
        assert "key vault" in body["detail"]
    finally:
        stop_server(wrong)
    assert "key vault is not usable" in wrong.log() and session_kek not in wrong.log()
