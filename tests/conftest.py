"""Shared fixtures: a PostgreSQL for the whole run (DATABASE_URL, else embedded), one schema per run."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
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


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A PostgreSQL server for one test, so it can be restarted without disturbing the others."""
    from tests.e2e.restartable_postgres import pg_ctl

    data_dir = tmp_path / "postgres"
    embedded = EmbeddedPostgres(data_dir)
    url = embedded.start()
    yield data_dir, url
    embedded.stop()
    try:  # pgserver only stops the postmaster it started, not the one a test restarted
        pg_ctl(data_dir, "stop", "-m", "fast")
    except subprocess.CalledProcessError:
        pass  # already stopped
