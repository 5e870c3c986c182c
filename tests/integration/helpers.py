"""Helpers for integration tests: seeding a workspace and dumping the database."""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from adapters.embedded_postgres import pg_bin
from adapters.postgres import Database
from domain.application import CommHub

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=timezone.utc)


@dataclass
class Person:
    contact_id: uuid.UUID
    name: str
    phone: str
    email: str
    note: str

    @property
    def secrets(self) -> list[str]:
        return [self.name, self.phone, self.email, self.note]


def new_workspace(app: CommHub) -> uuid.UUID:
    slug = f"ws-{uuid.uuid4().hex[:10]}"
    return app.create_workspace(workspace_id=uuid.uuid4(), name="Harbour Physio", slug=slug, time_zone="Europe/London", now=NOW)


def new_person(app: CommHub, workspace_id: uuid.UUID, label: str) -> Person:
    token = uuid.uuid4().hex[:8]
    person = Person(
        contact_id=uuid.uuid4(),
        name=f"{label} Quintessa-{token}",
        phone=f"+4477009{int(token, 16) % 100000:05d}",
        email=f"{label.lower()}.{token}@example.org",
        note=f"{label} reports knee pain after marathon {token}",
    )
    app.create_contact(
        workspace_id=workspace_id, contact_id=person.contact_id, name=person.name, phone=person.phone,
        email=person.email, now=NOW,
    )
    app.add_note(workspace_id, person.contact_id, note_id=uuid.uuid4(), text=person.note, author_id=None, now=NOW)
    return person


def pg_dump(database: Database, attempts: int = 3) -> str:
    """A plain-text dump of the whole database, as an attacker with a backup would see it.

    Retried: on a shared test server another run may drop its schema while the dump reads it."""
    for _ in range(attempts):
        result = subprocess.run(
            [str(pg_bin("pg_dump")), "--no-owner", "--dbname", database.url],
            capture_output=True, text=True, timeout=120,
        )
        if result.returncode == 0:
            return result.stdout
    raise AssertionError(f"pg_dump failed {attempts} times: {result.stderr[-500:]}")


def appearances(dump: str, secret: str) -> list[str]:
    """Where ``secret`` shows in a dump: as text, or hex-encoded inside a bytea value."""
    found = []
    if secret.lower() in dump.lower():
        found.append("text")
    if secret.encode().hex() in dump.lower():
        found.append("bytea-hex")
    return found


def count_events(database: Database) -> int:
    with database.connect() as conn:
        return conn.execute("SELECT count(*) FROM commhub_events").fetchone()[0]
