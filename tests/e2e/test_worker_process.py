"""``commhub serve --workers process`` (the default): the projections and background workers run in
a child ``commhub worker`` that the server starts, restarts and stops."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Iterator

import httpx
import psutil
import pytest

from tests.e2e.api_support import AgentSocket, demo_login, phone_number, unique, wait_for
from tests.e2e.conftest import ROOT, Server, free_port, start_server, stop_server


def worker_of(server: Server) -> psutil.Process | None:
    children = [c for c in psutil.Process(server.process.pid).children() if "worker" in c.cmdline()]
    return children[0] if children else None


@pytest.fixture
def process_server(tmp_path, fresh_database, session_kek) -> Iterator[Server]:
    env = {"DATABASE_URL": fresh_database.url, "COMMHUB_DB_SCHEMA": fresh_database.schema,
           "COMMHUB_KEK": session_kek, "COMMHUB_WORKERS": ""}  # unset: the default mode
    server = start_server(tmp_path, env, "--demo")
    yield server
    stop_server(server)


def test_the_default_runs_a_worker_process_that_projects_and_feeds_the_live_inbox(process_server):
    worker = worker_of(process_server)
    assert worker is not None and worker.is_running()
    with demo_login(process_server) as owner:  # the login printed at start-up works at once
        token = owner.token
        phone, body = phone_number(), unique("Can I bring my daughter along?")

        async def scenario() -> list[dict]:
            socket = AgentSocket(process_server.url, token)
            await socket.connect()
            try:
                await asyncio.to_thread(owner.inbound, phone, body)
                return await socket.collect(lambda seen: any(u.get("body") == body for u in seen), timeout=15)
            finally:
                await socket.close()

        updates = asyncio.run(scenario())
        assert any(u["type"] == "conversation.message_received" and u.get("body") == body for u in updates)
        inbox = owner.ok("GET", "/api/v1/conversations", params={"view": "all"})["items"]
        assert any(c["preview"] == body for c in inbox)  # read-your-writes through the worker's projections


def test_a_worker_that_dies_is_replaced_and_nothing_stored_meanwhile_is_lost(process_server):
    first = worker_of(process_server)
    assert first is not None
    with demo_login(process_server) as owner:
        first.kill()
        first.wait(timeout=10)
        body = unique("Sent while the worker was down")
        owner.inbound(phone_number(), body)  # stored; its projection waits for the next worker
        second = wait_for(lambda: (w := worker_of(process_server)) and w.pid != first.pid and w, timeout=30,
                          what="a new worker process")
        assert second.is_running()
        wait_for(lambda: any(c["preview"] == body for c in owner.ok(
            "GET", "/api/v1/conversations", params={"view": "all"})["items"]), timeout=30,
            what="the new worker to project what was stored meanwhile")
    assert "worker process exited" in process_server.log()


def test_stopping_the_server_stops_its_worker_and_a_killed_server_leaves_no_worker_behind(tmp_path, fresh_database,
                                                                                          session_kek):
    env = {"DATABASE_URL": fresh_database.url, "COMMHUB_DB_SCHEMA": fresh_database.schema,
           "COMMHUB_KEK": session_kek, "COMMHUB_WORKERS": "process"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    server = start_server(tmp_path / "a", env)
    worker = worker_of(server)
    assert worker is not None
    stop_server(server)  # SIGTERM
    assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE

    server = start_server(tmp_path / "b", env)
    worker = worker_of(server)
    assert worker is not None
    os.kill(server.process.pid, signal.SIGKILL)  # no chance to stop it
    server.process.wait(timeout=10)
    deadline = time.monotonic() + 15
    while worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE, "the orphaned worker kept running"


def test_started_elsewhere_with_a_relative_data_directory_and_key_file_the_worker_uses_the_same_key(
        tmp_path, fresh_database):
    """The quickstart: no KEK configured, data in ./.hub relative to where `serve` was started. The
    worker must open the key file the server created, not make its own (it would find every sealed
    event unreadable)."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": fresh_database.url, "COMMHUB_DB_SCHEMA": fresh_database.schema,
           "COMMHUB_DATA_DIR": ".hub", "COMMHUB_PORT": str(port), "COMMHUB_WORKERS": "process",
           "PYTHONPATH": str(ROOT)}
    env.pop("COMMHUB_KEK", None)
    env.pop("COMMHUB_KEK_FILE", None)
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--demo"], cwd=tmp_path, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", process, log_path, tmp_path / ".hub", {})
    try:
        def ready() -> bool:  # the login is announced during start-up, before the port is open
            try:
                return httpx.get(f"{server.url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=60, what="the server to start")
        with demo_login(server) as owner:
            body = unique("Sealed under the server's key")
            owner.inbound(phone_number(), body)
            assert any(c["preview"] == body for c in owner.ok(
                "GET", "/api/v1/conversations", params={"view": "all"})["items"])
        assert not (ROOT / ".hub").exists()
        assert "cannot be read" not in server.log(), server.log()[-2000:]
    finally:
        stop_server(server)
