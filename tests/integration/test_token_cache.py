"""Token lookups cached by serving processes: a logout or a role change made through one process
holds in every other one at once (NOTIFY), and a process that does not listen never caches."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest

from adapters.tokens import TokenStore, digest
from tests.integration.helpers import NOW, new_workspace

SOON = NOW + timedelta(minutes=1)


@pytest.fixture
def staff_token(hub):
    workspace_id = new_workspace(hub.app)
    staff_id = hub.app.add_staff(workspace_id=workspace_id, staff_id=uuid.uuid4(), name="Agent Ada",
                                 email=f"{uuid.uuid4().hex[:8]}@example.org", role="agent", password_hash="-", now=NOW)
    hub.projections.catch_up()
    return workspace_id, staff_id, hub.tokens.issue(workspace_id, staff_id, NOW)


@pytest.fixture
def two_processes(hub):
    """Two serving token stores on one database, as two API processes would have."""
    first, second = TokenStore(hub.database).start(), TokenStore(hub.database).start()
    yield first, second
    first.stop()
    second.stop()


def eventually(check, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def test_a_logout_in_one_process_refuses_the_token_in_another_that_had_it_cached(two_processes, staff_token):
    first, second = two_processes
    _, staff_id, token = staff_token
    assert second.resolve(token, NOW).staff_id == staff_id
    assert second.cached(token, NOW) is not None  # the next request there would not ask the database

    first.revoke(token, SOON)

    assert first.resolve(token, SOON) is None
    assert eventually(lambda: second.resolve(token, SOON) is None)


def test_revoking_all_of_a_staff_members_tokens_reaches_every_process(two_processes, staff_token):
    first, second = two_processes
    _, staff_id, token = staff_token
    assert second.resolve(token, NOW) is not None

    first.revoke_all(staff_id, SOON)

    assert eventually(lambda: second.resolve(token, SOON) is None)


def test_a_role_change_reaches_a_cached_token_once_projected(hub, two_processes, staff_token):
    _, second = two_processes
    workspace_id, staff_id, token = staff_token
    assert second.resolve(token, NOW).role == "agent"

    hub.app.change_staff_role(workspace_id, staff_id, "compliance", None, SOON)
    hub.projections.catch_up()

    assert eventually(lambda: second.resolve(token, SOON).role == "compliance")


def test_a_deactivated_staff_members_cached_token_stops_working(hub, two_processes, staff_token):
    _, second = two_processes
    workspace_id, staff_id, token = staff_token
    assert second.resolve(token, NOW) is not None

    staff = hub.app.get_staff(workspace_id, staff_id)
    staff.deactivate(None, SOON)
    hub.app.save(staff)
    hub.projections.catch_up()

    assert eventually(lambda: second.resolve(token, SOON) is None)


def test_a_cached_token_still_expires_on_time(two_processes, staff_token):
    _, second = two_processes
    _, _, token = staff_token
    assert second.resolve(token, NOW) is not None

    assert second.resolve(token, NOW + timedelta(hours=13)) is None


def test_a_store_that_does_not_listen_reads_the_table_every_time(hub, staff_token):
    _, _, token = staff_token
    assert hub.tokens.resolve(token, NOW) is not None
    with hub.database.connection() as conn:  # a change no one announces
        conn.execute("UPDATE commhub_auth_tokens SET revoked_at = %s WHERE token_hash = %s", (NOW, digest(token)))

    assert hub.tokens.cached(token, NOW) is None
    assert hub.tokens.resolve(token, NOW) is None
