"""Shared fixtures: a PostgreSQL for the whole run (DATABASE_URL, else embedded), one schema per run."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from adapters.embedded_postgres import EmbeddedPostgres
from adapters.kek import encode_kek, generate_kek
from adapters.postgres import Database
from api.settings import Settings
from tests.processes import stop_started_workers


@pytest.fixture(autouse=True)
def _stop_leftover_workers():
    """Workers a test started (tests/processes.py) are stopped when it ends, however it ended."""
    yield
    stop_started_workers()


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory):
    settings = Settings.from_env()
    if settings.database_url:
        yield settings.database_url
        return
    embedded = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "postgres")
    yield embedded.start()
    embedded.stop()


@pytest.fixture(scope="session")
def database(server_url: str):
    """A schema of our own on the test server, dropped at the end of the run."""
    db = Database(server_url, f"test_{uuid.uuid4().hex[:12]}")
    db.ensure_schema()
    yield db
    db.drop_schema()


@pytest.fixture
def fresh_database(server_url: str):
    """A schema for one test, for tests that count or dump everything."""
    db = Database(server_url, f"test_{uuid.uuid4().hex[:12]}")
    db.ensure_schema()
    yield db
    db.drop_schema()


@pytest.fixture(scope="session")
def session_kek() -> str:
    return encode_kek(generate_kek())


@pytest.fixture
def settings(tmp_path: Path, database: Database, session_kek: str) -> Settings:
    return Settings(database_url=database.url, db_schema=database.schema, data_dir=tmp_path, kek=session_kek)


@pytest.fixture
def hub(settings: Settings, database: Database):
    from api.bootstrap import bootstrap

    with bootstrap(settings, database=database) as running:
        yield running
