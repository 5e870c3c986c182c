"""Webhooks against PostgreSQL and a real receiver on loopback: events → projection → delivery queue →
worker → signed POST; retries, give-up, refusals, erasure purges, rebuilds never resend."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from adapters.webhook_delivery import WebhookWorker
from api.bootstrap import bootstrap
from domain.webhooks import verify
from projections import webhooks as queries
from tests.e2e.conftest import free_port
from tests.integration.helpers import NOW, appearances, new_person, new_workspace, pg_dump
from tests.webhook_receiver import WebhookReceiver

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "webhooks" / "events.schema.json").read_text())
SECRET = "whsec_integration-secret-value"
ALL = ["message.received", "message.sent", "contact.created", "consent.changed", "subject.erased",
       "appointment.booked"]


@pytest.fixture
def isolated_hub(settings, fresh_database):
    with bootstrap(settings, database=fresh_database) as running:
        yield running


def worker(hub: Any, **options: Any) -> WebhookWorker:
    settings = {"allow_private": True, "base_delay": 0.001, "max_delay": 0.01, "max_attempts": 4, "timeout": 2.0,
                **options}
    return WebhookWorker(hub.app, hub.database, hub.vault, **settings)


def subscribe(hub: Any, workspace_id: uuid.UUID, url: str, types: list[str] = ALL) -> uuid.UUID:
    return hub.app.subscribe_webhook(workspace_id, uuid.uuid4(), url=url, event_types=types, description="test",
                                     secret=SECRET, actor_id=None, now=NOW).id


def drain(hub: Any, sender: WebhookWorker, rounds: int = 20) -> None:
    """Project, then send until nothing is due (retries are due at once with the tiny delays)."""
    hub.projections.catch_up()
    for _ in range(rounds):
        if not sender.run_once():
            time.sleep(0.03)
            if not sender.run_once():
                return


def deliveries(hub: Any, workspace_id: uuid.UUID, subscription_id: uuid.UUID) -> list[dict[str, Any]]:
    with hub.database.connection() as conn:
        return queries.list_deliveries(conn, workspace_id, subscription_id, state=None, limit=200, before=None)


def test_events_reach_a_subscriber_signed_valid_and_each_with_a_stable_id(isolated_hub):
    hub = isolated_hub
    workspace_id = new_workspace(hub.app)
    with WebhookReceiver() as receiver:
        subscription_id = subscribe(hub, workspace_id, receiver.url())
        person = new_person(hub.app, workspace_id, "Wren")
        conversation_id, message_id, _ = hub.app.receive_message(
            workspace_id=workspace_id, contact_id=person.contact_id, channel="sms", body=person.note, now=NOW)
        hub.app.grant_consent(workspace_id, person.contact_id, channel="sms", purpose="marketing", source="form",
                              wording="yes", actor_id=None, now=NOW)
        drain(hub, worker(hub))

        got = {r.headers["commhub-event-type"]: r for r in receiver.received}
        assert set(got) == {"contact.created", "message.received", "consent.changed"}
        for request in receiver.received:
            assert verify(SECRET, request.headers["commhub-signature"], request.body, now=time.time())
            jsonschema.validate(request.json, SCHEMA, format_checker=jsonschema.FormatChecker())
            assert request.headers["commhub-event-id"] == request.json["id"]
            for secret in person.secrets:
                assert secret not in request.body.decode()
        assert got["message.received"].json["data"] == {
            "conversation_id": str(conversation_id), "contact_id": str(person.contact_id),
            "message_id": str(message_id), "direction": "in"}
        rows = deliveries(hub, workspace_id, subscription_id)
        assert {r["state"] for r in rows} == {"delivered"}
        assert all(len(r["attempt_log"]) == 1 and r["attempt_log"][0]["http_status"] == 200 for r in rows)


def test_a_receiver_that_fails_then_recovers_gets_the_same_delivery_again_with_each_attempt_recorded(isolated_hub):
    hub = isolated_hub
    workspace_id = new_workspace(hub.app)
    with WebhookReceiver(plan=[503, 429]) as receiver:
        subscription_id = subscribe(hub, workspace_id, receiver.url(), ["contact.created"])
        new_person(hub.app, workspace_id, "Ivo")
        drain(hub, worker(hub))

        assert len(receiver.received) == 3
        assert len({r.headers["commhub-event-id"] for r in receiver.received}) == 1
        assert len({r.headers["commhub-delivery-id"] for r in receiver.received}) == 1
        [row] = deliveries(hub, workspace_id, subscription_id)
        assert row["state"] == "delivered" and row["attempts"] == 3
        assert [a["http_status"] for a in row["attempt_log"]] == [503, 429, 200]
        assert [a["next_retry_at"] is not None for a in row["attempt_log"]] == [True, True, False]


def test_a_receiver_that_keeps_failing_is_given_up_on_after_the_maximum_attempts(isolated_hub):
    hub = isolated_hub
    workspace_id = new_workspace(hub.app)
    with WebhookReceiver(plan=[500] * 10) as receiver:
        subscription_id = subscribe(hub, workspace_id, receiver.url(), ["contact.created"])
        new_person(hub.app, workspace_id, "Oona")
        drain(hub, worker(hub, max_attempts=3))
        assert len(receiver.received) == 3
        [row] = deliveries(hub, workspace_id, subscription_id)
        assert row["state"] == "failed" and row["last_status"] == 500 and row["attempts"] == 3


def test_a_client_error_fails_at_once_and_a_redirect_is_not_followed(isolated_hub):
    hub = isolated_hub
    workspace_id = new_workspace(hub.app)
    with WebhookReceiver() as elsewhere, WebhookReceiver(plan=[410]) as gone, \
            WebhookReceiver(redirect_to=elsewhere.url()) as moved:
        first = subscribe(hub, workspace_id, gone.url(), ["contact.created"])
        second = subscribe(hub, workspace_id, moved.url(), ["contact.created"])
        new_person(hub.app, workspace_id, "Uma")
        drain(hub, worker(hub))
        assert len(gone.received) == 1 and len(moved.received) == 1 and elsewhere.received == []
        [refused] = deliveries(hub, workspace_id, first)
        [redirected] = deliveries(hub, workspace_id, second)
        assert (refused["state"], refused["last_error"]) == ("failed", "http_410")
        assert (redirected["state"], redirected["last_status"]) == ("failed", 302)


def test_loopback_destinations_are_refused_unless_allowed(isolated_hub):
    hub = isolated_hub
    workspace_id = new_workspace(hub.app)
    with WebhookReceiver() as receiver:
        subscription_id = subscribe(hub, workspace_id, f"http://localhost:{receiver.port}/hooks", ["contact.created"])
        new_person(hub.app, workspace_id, "Cai")
        drain(hub, worker(hub, allow_private=False))
        assert receiver.received == []
        [row] = deliveries(hub, workspace_id, subscription_id)
        assert row["state"] == "failed" and row["attempt_log"][0]["error"] == "destination_refused"


def test_erasing_a_contact_purges_their_queued_deliveries_and_only_ids_of_the_erasure_arrive(isolated_hub):
    hub = isolated_hub
    workspace_id = new_workspace(hub.app)
    port = free_port()  # nobody listens here yet: deliveries wait for retries
    subscription_id = subscribe(hub, workspace_id, f"http://127.0.0.1:{port}/hooks")
    erased, kept = new_person(hub.app, workspace_id, "Pia"), new_person(hub.app, workspace_id, "Rex")
    for person in (erased, kept):
        conversation_id, _, _ = hub.app.receive_message(workspace_id=workspace_id, contact_id=person.contact_id,
                                                        channel="sms", body=person.note, now=NOW)
        hub.app.reply(workspace_id, conversation_id, body=f"Reply to {person.name}", author_id=None, now=NOW)
    sender = worker(hub, max_attempts=50)
    drain(hub, sender, rounds=2)
    waiting = deliveries(hub, workspace_id, subscription_id)
    assert waiting and {r["state"] for r in waiting} == {"pending"}
    assert {a["error"] for r in waiting for a in r["attempt_log"]} == {"connect_error"}

    request_id = uuid.uuid4()
    hub.app.erase_contact(workspace_id, erased.contact_id, request_id=request_id, actor_id=None, now=NOW)
    hub.projections.catch_up()
    with hub.database.connection() as conn:  # due again now, not after their backoff
        conn.execute("UPDATE commhub_webhook_deliveries SET next_attempt_at = now() - interval '1 second'"
                     " WHERE state = 'pending'")
    with WebhookReceiver(port=port) as receiver:
        drain(hub, sender)
        about = {r.json["data"]["contact_id"] for r in receiver.received}
        assert str(kept.contact_id) in about
        from_erased = [r for r in receiver.received if r.json["data"]["contact_id"] == str(erased.contact_id)]
        assert [r.json["type"] for r in from_erased] == ["subject.erased"]
        assert from_erased[0].json["data"] == {"contact_id": str(erased.contact_id),
                                               "subject_ids": [str(erased.contact_id)],
                                               "erasure_id": str(request_id)}
        everything = b"".join(r.body for r in receiver.received).decode()
        for secret in [*erased.secrets, f"Reply to {erased.name}"]:
            assert secret not in everything
    states = {(r["event_type"], r["state"]) for r in deliveries(hub, workspace_id, subscription_id)
              if r["state"] == "purged"}
    assert {"message.received", "message.sent", "contact.created"} <= {t for t, _ in states}
    dump = pg_dump(hub.database)
    for secret in erased.secrets:
        assert appearances(dump, secret) == [], secret


def test_rebuilding_the_projection_sends_nothing_again(isolated_hub):
    hub = isolated_hub
    workspace_id = new_workspace(hub.app)
    with WebhookReceiver() as receiver:
        subscription_id = subscribe(hub, workspace_id, receiver.url())
        new_person(hub.app, workspace_id, "Ada")
        sender = worker(hub)
        drain(hub, sender)
        before = deliveries(hub, workspace_id, subscription_id)
        assert len(receiver.received) == 1
        hub.projections.rebuild("webhooks")
        drain(hub, sender)
        assert len(receiver.received) == 1
        assert deliveries(hub, workspace_id, subscription_id) == before


def test_old_finished_deliveries_are_removed_and_a_rebuild_then_sends_none_of_them_again(isolated_hub):
    hub = isolated_hub
    workspace_id = new_workspace(hub.app)
    with WebhookReceiver() as receiver:
        subscription_id = subscribe(hub, workspace_id, receiver.url(), ["contact.created"])
        new_person(hub.app, workspace_id, "Old")
        new_person(hub.app, workspace_id, "Older")
        drain(hub, worker(hub))
        assert len(receiver.received) == 2
        new_person(hub.app, workspace_id, "Waiting")  # queued, not sent yet: pending rows are never removed
        hub.projections.catch_up()
        with hub.database.connection() as conn:
            attempts = conn.execute("SELECT count(*) FROM commhub_webhook_attempts").fetchone()[0]
        assert attempts == 2

        assert worker(hub, keep_days=30).prune() == 0  # finished today: kept
        later = datetime.now(timezone.utc) + timedelta(days=31)
        assert worker(hub, keep_days=30, clock=lambda: later).prune() == 2
        rows = deliveries(hub, workspace_id, subscription_id)
        assert [r["state"] for r in rows] == ["pending"]
        with hub.database.connection() as conn:
            assert conn.execute("SELECT count(*) FROM commhub_webhook_attempts").fetchone()[0] == 0

        hub.projections.rebuild("webhooks")
        drain(hub, worker(hub, keep_days=0))
        assert len(receiver.received) == 3  # the pending one only: the removed two were not queued again
        assert [r["state"] for r in deliveries(hub, workspace_id, subscription_id)] == ["delivered"]


def test_only_the_workspace_and_types_subscribed_receive_and_a_deleted_subscription_stops(isolated_hub):
    hub = isolated_hub
    mine, other = new_workspace(hub.app), new_workspace(hub.app)
    with WebhookReceiver() as receiver, WebhookReceiver() as paused:
        subscribe(hub, mine, receiver.url(), ["message.received"])
        paused_id = subscribe(hub, mine, paused.url(), ["contact.created"])
        hub.app.change_webhook(mine, paused_id, url=None, event_types=None, description=None, active=False,
                               actor_id=None, now=NOW)
        deleted = subscribe(hub, mine, receiver.url("/gone"), ["contact.created"])
        new_person(hub.app, mine, "Bo")
        theirs = new_person(hub.app, other, "Cy")
        hub.app.receive_message(workspace_id=other, contact_id=theirs.contact_id, channel="sms", body="hi", now=NOW)
        hub.projections.catch_up()
        assert [r["state"] for r in deliveries(hub, mine, deleted)] == ["pending"]
        hub.app.delete_webhook(mine, deleted, None, NOW + timedelta(seconds=1))
        drain(hub, worker(hub))
        assert receiver.received == [] and paused.received == []
        assert deliveries(hub, mine, paused_id) == []
        assert [r["state"] for r in deliveries(hub, mine, deleted)] == ["cancelled"]


def test_two_workers_racing_for_the_queue_send_each_delivery_once(isolated_hub):
    hub = isolated_hub
    workspace_id = new_workspace(hub.app)
    with WebhookReceiver() as receiver:
        subscription_id = subscribe(hub, workspace_id, receiver.url(), ["contact.created"])
        for index in range(30):
            hub.app.create_contact(workspace_id=workspace_id, contact_id=uuid.uuid4(), name=f"Racer {index}", now=NOW)
        hub.projections.catch_up()
        first, second = worker(hub), worker(hub)
        counts = {"first": 0, "second": 0}

        def run(name: str, sender: WebhookWorker) -> None:
            while (claimed := sender.run_once(limit=3)):
                counts[name] += claimed

        threads = [threading.Thread(target=run, args=item) for item in (("first", first), ("second", second))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        ids = [r.headers["commhub-delivery-id"] for r in receiver.received]
        assert len(ids) == 30 and len(set(ids)) == 30
        assert counts["first"] > 0 and counts["second"] > 0 and sum(counts.values()) == 30
        assert {r["state"] for r in deliveries(hub, workspace_id, subscription_id)} == {"delivered"}


def test_a_batch_queues_deliveries_only_for_the_subscribed_workspaces_and_types(isolated_hub):
    """Subscriptions projected before the batch: the batch reads them once and skips the rest."""
    hub = isolated_hub
    mine, other = new_workspace(hub.app), new_workspace(hub.app)
    subscription_id = subscribe(hub, mine, "http://127.0.0.1:9/hooks", ["message.received"])
    hub.projections.catch_up()
    me, them = new_person(hub.app, mine, "Di"), new_person(hub.app, other, "Ed")
    for workspace_id, person in ((mine, me), (other, them)):
        hub.app.receive_message(workspace_id=workspace_id, contact_id=person.contact_id, channel="sms", body="hi",
                                now=NOW)
    hub.projections.catch_up()
    assert [r["event_type"] for r in deliveries(hub, mine, subscription_id)] == ["message.received"]
    with hub.database.connection() as conn:
        queued = conn.execute("SELECT workspace_id, event_type FROM commhub_webhook_deliveries").fetchall()
    assert queued == [(mine, "message.received")]


def test_a_subscription_made_in_the_same_batch_as_an_event_receives_it(isolated_hub):
    hub = isolated_hub
    workspace_id = new_workspace(hub.app)
    hub.projections.catch_up()
    person = new_person(hub.app, workspace_id, "Flo")
    hub.projections.catch_up()
    subscription_id = subscribe(hub, workspace_id, "http://127.0.0.1:9/hooks", ["message.received"])
    hub.app.receive_message(workspace_id=workspace_id, contact_id=person.contact_id, channel="sms", body="hi",
                            now=NOW)
    assert hub.projections.run_once() >= 2  # the subscription and the message in one batch
    assert [r["event_type"] for r in deliveries(hub, workspace_id, subscription_id)] == ["message.received"]
