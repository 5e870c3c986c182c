"""Widget visitors in PostgreSQL: tokens and identities are stored only as digests, resolve to their
contact, and vanish with the contact's erasure; identity secrets are sealed in the event store."""

from __future__ import annotations

import uuid
from datetime import timedelta

from domain.contact import Contact
from tests.integration.helpers import NOW, new_workspace, pg_dump


def test_visitor_tokens_and_identities_are_digests_and_are_deleted_when_the_contact_is_erased(hub):
    app, visitors = hub.app, hub.extras["visitors"]
    workspace_id = new_workspace(app)
    contact_id = app.add_visitor(workspace_id, contact_id=uuid.uuid4(), name="Web visitor", custom_fields={},
                                 notice="the notice", ip_address="203.0.113.9", now=NOW)
    other_id = app.add_visitor(workspace_id, contact_id=uuid.uuid4(), name="Web visitor", custom_fields={},
                               notice="the notice", ip_address=None, now=NOW)
    token = visitors.issue(workspace_id, contact_id, False, NOW)
    other_token = visitors.issue(workspace_id, other_id, False, NOW)
    user_id = f"user-{uuid.uuid4().hex}"
    assert visitors.contact_for_identity(workspace_id, user_id, contact_id) == contact_id
    assert visitors.contact_for_identity(workspace_id, user_id, uuid.uuid4()) == contact_id, "first claim wins"

    assert visitors.resolve(workspace_id, token, NOW).contact_id == contact_id
    assert visitors.resolve(new_workspace(app), token, NOW) is None, "a token opens only its own workspace"
    assert visitors.resolve(workspace_id, token, NOW + timedelta(days=181)) is None, "idle tokens expire"
    with hub.database.connect() as conn:
        stored = conn.execute("SELECT token_hash FROM commhub_widget_visitors WHERE contact_id = %s",
                              (contact_id,)).fetchone()[0]
    assert token.encode() not in bytes(stored)
    assert user_id.encode().hex() not in pg_dump(hub.database)

    app.erase_contact(workspace_id, contact_id, request_id=uuid.uuid4(), actor_id=None, now=NOW)
    hub.projections.catch_up()
    assert visitors.resolve(workspace_id, token, NOW) is None
    assert visitors.identity_contact(workspace_id, user_id) is None
    assert visitors.resolve(workspace_id, other_token, NOW).contact_id == other_id, "others keep theirs"
    assert isinstance(app._get(other_id, Contact), Contact)


def test_identity_secrets_are_sealed_in_the_event_store(hub):
    app = hub.app
    workspace_id = new_workspace(app)
    app.configure_widget(workspace_id, public_key=f"wk_{uuid.uuid4().hex}", allowed_origins=["https://a.example"],
                         privacy_policy_url=None, actor_id=None, now=NOW)
    secret = f"secret-{uuid.uuid4().hex}"
    app.rotate_widget_secret(workspace_id, secret_id=uuid.uuid4(), secret=secret, grace=timedelta(hours=1),
                             actor_id=None, now=NOW)
    assert [s.secret for s in app.get_widget(workspace_id).identity_secrets()] == [secret]
    dump = pg_dump(hub.database)
    assert secret.encode().hex() not in dump and "https://a.example".encode().hex() in dump
