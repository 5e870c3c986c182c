"""Fixtures that run commhub as a real server process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log_path: Path
    data_dir: Path
    env: dict[str, str]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(data_dir: Path, env: dict[str, str], *args: str, timeout: float = 60,
                 ready_path: str = "/readyz") -> Server:
    port = free_port()
    log_path = data_dir / f"server-{port}.log"
    # One process per server unless a test asks otherwise: a child worker per server would cost the
    # suite a process start each time; test_worker_process.py covers the default (a worker process).
    # Two connections per pool: several test servers share one PostgreSQL (100 connections) at a time.
    environment = {**os.environ, "COMMHUB_WORKERS": "on", "COMMHUB_DB_POOL_SIZE": "2", **env,
                   "COMMHUB_DATA_DIR": str(data_dir), "COMMHUB_PORT": str(port)}
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", *args], cwd=ROOT, env=environment,
            stdout=log, stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log_path, data_dir, env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}{ready_path}", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server did not become ready:\n{server.log()}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture
def demo_server(tmp_path, fresh_database, session_kek):
    """``commhub serve --demo`` against the test database, in a schema of its own."""
    database = fresh_database
    env = {"DATABASE_URL": database.url, "COMMHUB_DB_SCHEMA": database.schema, "COMMHUB_KEK": session_kek}
    server = start_server(tmp_path, env, "--demo")
    yield server
    stop_server(server)
