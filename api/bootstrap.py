"""The composition root: builds the database, key vault and application from Settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from adapters.codec import MsgspecTranscoder
from adapters.embedded_postgres import EmbeddedPostgres
from adapters.kek import load_keyring
from adapters.key_vault import KeyVault
from adapters.postgres import Database
from adapters.sealing import SealingMapper
from api.settings import Settings
from domain.application import CommHub

log = logging.getLogger(__name__)


@dataclass
class Hub:
    """A running commhub: what every entry point (server, CLI, worker, test) works with."""

    settings: Settings
    database: Database
    vault: KeyVault
    app: CommHub
    embedded: EmbeddedPostgres | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        self.app.close()
        self.vault.close()
        if self.embedded is not None:
            self.embedded.stop()

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_database(settings: Settings) -> tuple[Database, EmbeddedPostgres | None]:
    """The configured PostgreSQL, or an embedded one in the data directory when none is given."""
    embedded = None
    url = settings.database_url
    if url is None:
        embedded = EmbeddedPostgres(settings.data_dir / "postgres")
        url = embedded.start()
    database = Database(url, settings.db_schema)
    database.ensure_schema()
    return database, embedded


def bootstrap(settings: Settings, *, database: Database | None = None) -> Hub:
    embedded = None
    if database is None:
        database, embedded = start_database(settings)
    keyring = load_keyring(settings.kek, settings.resolved_kek_file, settings.previous_keks)
    vault = KeyVault(database, keyring, cache_seconds=settings.key_cache_seconds).start()
    app = CommHub(
        database.eventsourcing_env(pool_size=settings.pool_size),
        mapper_factory=lambda _: SealingMapper(MsgspecTranscoder(), vault),
        shredder=vault,
    )
    return Hub(settings=settings, database=database, vault=vault, app=app, embedded=embedded)
