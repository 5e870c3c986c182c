"""API keys against PostgreSQL: the row the API writes and the row the projection writes agree (a
rebuild equals live), race each other harmlessly, and a revoked key resolves to nothing at once."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest

from api.bootstrap import bootstrap
from projections.api_keys import INSERT, ApiKeyStore, key_digest, list_keys, new_secret
from tests.integration.helpers import NOW, new_workspace


@pytest.fixture
def isolated_hub(settings, fresh_database):
    with bootstrap(settings, database=fresh_database) as running:
        yield running


def issue(hub, workspace_id, actor_id):
    secret = new_secret()
    key = hub.app.issue_api_key(workspace_id, uuid.uuid4(), name="CRM", scopes=["contacts:read"],
                                key_digest=key_digest(secret), hint=secret[:8], actor_id=actor_id, now=NOW)
    return secret, key


def rows(hub, workspace_id):
    with hub.database.connection() as conn:
        return [{k: v for k, v in row.items() if k != "last_used_at"} for row in list_keys(conn, workspace_id)]


def test_the_rows_the_api_writes_equal_what_the_projection_rebuilds(isolated_hub):
    hub, store = isolated_hub, ApiKeyStore(isolated_hub.database)
    workspace_id, actor = new_workspace(isolated_hub.app), uuid.uuid4()
    secret, key = issue(hub, workspace_id, actor)
    store.record_issued(key, actor)
    assert store.resolve(secret, NOW).api_key_id == key.id  # usable before any projection ran
    revoked = hub.app.revoke_api_key(workspace_id, key.id, actor, NOW + timedelta(minutes=1))
    store.record_revoked(key.id, actor, revoked.revoked_at)
    assert store.resolve(secret, NOW) is None
    live_before_projection = rows(hub, workspace_id)
    hub.projections.catch_up()
    assert rows(hub, workspace_id) == live_before_projection
    hub.projections.rebuild("api_keys")
    assert rows(hub, workspace_id) == live_before_projection
    assert live_before_projection[0]["created_by"] == actor and live_before_projection[0]["revoked_by"] == actor


def test_the_api_and_the_projection_inserting_the_same_key_at_once_do_not_fail(isolated_hub):
    hub = isolated_hub
    workspace_id, actor = new_workspace(hub.app), uuid.uuid4()
    _, key = issue(hub, workspace_id, actor)
    failures: list[BaseException] = []
    with hub.database.connect() as projection, projection.transaction():
        projection.execute(INSERT, (key.id, workspace_id, key.name, key.scopes, key.key_digest, key.hint,
                                    key.created_on, actor))

        def api_write() -> None:
            try:
                ApiKeyStore(hub.database).record_issued(key, actor)
            except BaseException as error:  # noqa: B036 (reported to the test thread)
                failures.append(error)

        writer = threading.Thread(target=api_write)
        writer.start()
        writer.join(timeout=1.0)
        assert writer.is_alive(), "the API's insert should wait for the projection's uncommitted row"
    writer.join(timeout=10)
    assert failures == [] and len(rows(hub, workspace_id)) == 1


def test_an_unknown_or_malformed_key_resolves_to_nobody(isolated_hub):
    store = ApiKeyStore(isolated_hub.database)
    assert store.resolve(new_secret(), NOW) is None
    assert store.resolve("not-a-key", NOW) is None
