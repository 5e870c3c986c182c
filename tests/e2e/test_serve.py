"""``commhub serve`` as a real process: it starts, seeds the demo, answers, and shuts down cleanly."""

from __future__ import annotations

import json

import httpx

from tests.e2e.conftest import start_server, stop_server


def test_demo_server_is_ready_and_prints_its_login(demo_server):
    assert httpx.get(f"{demo_server.url}/healthz").json() == {"status": "ok"}
    login = json.loads((demo_server.data_dir / "demo-login.json").read_text())
    assert login["email"] in demo_server.log() and login["password"] in demo_server.log()
    assert (demo_server.data_dir / "demo-login.json").stat().st_mode & 0o777 == 0o600


def test_unknown_routes_answer_with_problem_json(demo_server):
    response = httpx.get(f"{demo_server.url}/no/such/thing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


def test_restarting_on_the_same_data_directory_keeps_the_demo_login(demo_server, session_kek):
    first = json.loads((demo_server.data_dir / "demo-login.json").read_text())
    stop_server(demo_server)
    env = {"DATABASE_URL": demo_server.env["DATABASE_URL"], "COMMHUB_DB_SCHEMA": demo_server.env["COMMHUB_DB_SCHEMA"],
           "COMMHUB_KEK": session_kek}
    again = start_server(demo_server.data_dir, env, "--demo")
    try:
        assert json.loads((demo_server.data_dir / "demo-login.json").read_text()) == first
    finally:
        stop_server(again)


def test_the_embedded_database_starts_and_stops_with_the_server(tmp_path):
    server = start_server(tmp_path, {"DATABASE_URL": ""})
    try:
        assert httpx.get(f"{server.url}/readyz").json() == {"status": "ready", "projection_lag": 0}
        assert (tmp_path / "kek.key").stat().st_mode & 0o777 == 0o600
    finally:
        stop_server(server)
    assert server.process.returncode in (0, -15)  # uvicorn re-raises SIGTERM after a graceful shutdown
    assert "Application shutdown complete" in server.log()
    assert "embedded PostgreSQL stopped" in server.log()
    assert not (tmp_path / "postgres" / "postmaster.pid").exists()
