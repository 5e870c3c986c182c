"""Processes of one installation start one at a time (they would race on CREATE TABLE); an installation
in another schema of the same database starts without waiting for them."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.postgres import Database
from api.bootstrap import bootstrap, startup_lock
from api.settings import Settings


@pytest.fixture
def fresh(server_url: str, session_kek: str, tmp_path: Path) -> Iterator[tuple[Database, Settings]]:
    database = Database(server_url, f"test_{uuid.uuid4().hex[:12]}")
    database.ensure_schema()
    yield database, Settings(database_url=database.url, db_schema=database.schema, kek=session_kek, data_dir=tmp_path)
    database.drop_schema()


def start_in_background(database: Database, settings: Settings) -> tuple[threading.Event, threading.Thread]:
    started = threading.Event()

    def start() -> None:
        with bootstrap(settings, database=database):
            started.set()

    thread = threading.Thread(target=start, daemon=True)
    thread.start()
    return started, thread


def test_a_starting_process_waits_only_for_its_own_installation(fresh):
    database, settings = fresh
    with database.connect(autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (startup_lock("another_installation"),))
        started, thread = start_in_background(database, settings)
        assert started.wait(60), "start-up waited for another installation"
        thread.join(30)

        holder.execute("SELECT pg_advisory_lock(%s)", (startup_lock(database.schema),))
        started, thread = start_in_background(database, settings)
        assert not started.wait(3), "two processes of one installation built the event store at once"
        holder.execute("SELECT pg_advisory_unlock_all()")
        assert started.wait(60)
        thread.join(30)
