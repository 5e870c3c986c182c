"""Webhook subscriptions and the delivery queue they feed.

Each event a webhook carries becomes one delivery per active subscription of its workspace that
chose its type, keyed by ``md5(subscription id ‖ event id)``: a re-applied or rebuilt event finds its
delivery already there. The queue (deliveries and their attempts) is the worker's working state, so
it is not emptied by a rebuild — a rebuild never sends anything twice. Rows hold ids, types,
times and statuses, never personal data; ``Contact.Erased`` purges the subject's pending
deliveries before its own ``subject.erased`` delivery is queued.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence
from uuid import UUID

from psycopg.types.json import Jsonb

from domain.appointment import Appointment
from domain.contact import Contact
from domain.conversation import Conversation
from domain.integrations import WebhookSubscription
from domain.webhooks import envelope, event_id, webhook_event
from projections.base import View

DDL = """
CREATE TABLE IF NOT EXISTS commhub_webhook_subscriptions (
    subscription_id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    url text NOT NULL,
    event_types text[] NOT NULL,
    description text NOT NULL,
    active boolean NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    secret_rotated_at timestamptz
);
CREATE INDEX IF NOT EXISTS commhub_webhook_subscriptions_by_workspace
    ON commhub_webhook_subscriptions (workspace_id);
CREATE TABLE IF NOT EXISTS commhub_webhook_deliveries (
    delivery_id uuid PRIMARY KEY,
    subscription_id uuid NOT NULL,
    workspace_id uuid NOT NULL,
    event_id uuid NOT NULL,
    event_type text NOT NULL,
    subject_id uuid NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    state text NOT NULL DEFAULT 'pending',
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    finished_at timestamptz,
    last_status integer,
    last_error text
);
CREATE INDEX IF NOT EXISTS commhub_webhook_deliveries_due
    ON commhub_webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS commhub_webhook_deliveries_by_subscription
    ON commhub_webhook_deliveries (subscription_id, created_at DESC, delivery_id);
CREATE INDEX IF NOT EXISTS commhub_webhook_deliveries_pending_subject
    ON commhub_webhook_deliveries (subject_id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS commhub_webhook_deliveries_finished
    ON commhub_webhook_deliveries (finished_at) WHERE state <> 'pending';
CREATE TABLE IF NOT EXISTS commhub_webhook_pruned (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    through timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS commhub_webhook_attempts (
    delivery_id uuid NOT NULL,
    attempt integer NOT NULL,
    started_at timestamptz NOT NULL,
    duration_ms integer NOT NULL,
    http_status integer,
    error text,
    next_retry_at timestamptz,
    PRIMARY KEY (delivery_id, attempt)
);
"""
ENQUEUE = """
INSERT INTO commhub_webhook_deliveries (delivery_id, subscription_id, workspace_id, event_id, event_type, subject_id,
                                        payload, created_at, next_attempt_at)
SELECT md5(s.subscription_id::text || %(event_id)s::text)::uuid, s.subscription_id, s.workspace_id, %(event_id)s,
       %(type)s, %(subject_id)s, %(payload)s, %(at)s, %(at)s
FROM commhub_webhook_subscriptions s
WHERE s.workspace_id = %(workspace_id)s AND s.active AND %(type)s = ANY(s.event_types)
ON CONFLICT (delivery_id) DO NOTHING
"""
SUBSCRIBED = """
SELECT DISTINCT workspace_id, unnest(event_types), (SELECT through FROM commhub_webhook_pruned)
FROM commhub_webhook_subscriptions WHERE active AND workspace_id = ANY(%s)
"""
PRUNED = "SELECT through FROM commhub_webhook_pruned"
UNREAD = object()
CARRIED = (Conversation.MessageReceived, Conversation.MessageSent, Contact.Created, Contact.ConsentGranted,
           Contact.ConsentWithdrawn, Appointment.Booked, Appointment.Rescheduled, Appointment.Cancelled)


SUBSCRIPTION_EVENTS = (WebhookSubscription.Created, WebhookSubscription.Changed, WebhookSubscription.SecretRotated,
                       WebhookSubscription.Deleted)


class Webhooks(View):
    name = "webhooks"
    ddl = DDL
    tables = ("commhub_webhook_subscriptions",)
    kept = ("commhub_webhook_deliveries", "commhub_webhook_attempts", "commhub_webhook_pruned")  # working state
    handlers = {
        **{kind: "enqueue" for kind in CARRIED},
        Contact.Erased: "erased",
        WebhookSubscription.Created: "subscribed",
        WebhookSubscription.Changed: "changed",
        WebhookSubscription.SecretRotated: "rotated",
        WebhookSubscription.Deleted: "deleted",
    }

    _subscribed: set[tuple[UUID, str]] | None = None  # in a batch: (workspace, event type) with a subscriber
    # Deliveries of events up to this time were removed (adapters.webhook_delivery.prune): such events
    # are not enqueued again, so a rebuild cannot resend them. None: nothing removed yet.
    _pruned_through: Any = UNREAD
    _batching = False

    @contextmanager
    def batch(self, conn: Any, events: Sequence[Any]) -> Iterator[None]:
        """Reads once which of the batch's workspaces subscribe to what (and the prune cut-off, in
        the same statement), so that an event nobody subscribed to costs no statement (most
        workspaces have no webhook); a batch that changes a subscription enqueues every event as
        before (its answer could change mid-batch)."""
        pruned: Any = UNREAD
        if any(isinstance(e, SUBSCRIPTION_EVENTS) for e in events):
            subscribed = None
        else:
            workspaces = list({e.workspace_id for e in events if isinstance(e, CARRIED + (Contact.Erased,))})
            rows = conn.execute(SUBSCRIBED, (workspaces,)).fetchall() if workspaces else []
            subscribed = {(row[0], row[1]) for row in rows}
            pruned = rows[0][2] if rows else UNREAD  # no subscriber: nothing is enqueued, the cut-off is moot
        self._subscribed, self._pruned_through, self.quiet, self._batching = subscribed, pruned, True, True
        try:
            yield
        finally:
            self._subscribed, self._pruned_through, self._batching = None, UNREAD, False

    def enqueue(self, conn: Any, e: Any, position: int) -> None:
        found = webhook_event(e)
        if found is None:
            return
        if self._subscribed is not None and (e.workspace_id, found.type) not in self._subscribed:
            return
        pruned = self._pruned_through
        if pruned is UNREAD:
            row = conn.execute(PRUNED).fetchone()
            pruned = row[0] if row else None
            if self._batching:  # read once per batch; outside one, every time
                self._pruned_through = pruned
        if pruned is not None and e.timestamp <= pruned:
            return  # its delivery, if it had one, finished long ago and was removed
        self.quiet = False
        conn.execute(ENQUEUE, {
            "event_id": event_id(e.originator_id, e.originator_version), "type": found.type,
            "subject_id": found.subject_id, "workspace_id": e.workspace_id, "at": e.timestamp,
            "payload": Jsonb(envelope(found, e.originator_id, e.originator_version, e.workspace_id, e.timestamp)),
        })

    def erased(self, conn: Any, e: Contact.Erased, position: int) -> None:
        subjects: list[UUID] = list(dict.fromkeys([e.originator_id, *e.subject_ids]))
        conn.execute("UPDATE commhub_webhook_deliveries SET state = 'purged', finished_at = %s"
                     " WHERE subject_id = ANY(%s) AND state = 'pending'", (e.timestamp, subjects))
        self.enqueue(conn, e, position)

    def subscribed(self, conn: Any, e: WebhookSubscription.Created, position: int) -> None:
        conn.execute("INSERT INTO commhub_webhook_subscriptions VALUES (%s, %s, %s, %s, %s, true, %s, %s, %s)"
                     " ON CONFLICT DO NOTHING", (e.originator_id, e.workspace_id, e.url, e.event_types,
                                                 e.description, e.timestamp, e.timestamp, e.timestamp))

    def changed(self, conn: Any, e: WebhookSubscription.Changed, position: int) -> None:
        conn.execute("UPDATE commhub_webhook_subscriptions SET url = %s, event_types = %s, description = %s,"
                     " active = %s, updated_at = %s WHERE subscription_id = %s",
                     (e.url, e.event_types, e.description, e.active, e.timestamp, e.originator_id))

    def rotated(self, conn: Any, e: WebhookSubscription.SecretRotated, position: int) -> None:
        conn.execute("UPDATE commhub_webhook_subscriptions SET secret_rotated_at = %s, updated_at = %s"
                     " WHERE subscription_id = %s", (e.timestamp, e.timestamp, e.originator_id))

    def deleted(self, conn: Any, e: WebhookSubscription.Deleted, position: int) -> None:
        conn.execute("DELETE FROM commhub_webhook_subscriptions WHERE subscription_id = %s", (e.originator_id,))
        conn.execute("UPDATE commhub_webhook_deliveries SET state = 'cancelled', finished_at = %s"
                     " WHERE subscription_id = %s AND state = 'pending'", (e.timestamp, e.originator_id))


SUBSCRIPTION_COLUMNS = ("subscription_id", "url", "event_types", "description", "active", "created_at",
                        "updated_at", "secret_rotated_at")
DELIVERY_COLUMNS = ("delivery_id", "event_id", "event_type", "created_at", "state", "attempts", "next_attempt_at",
                    "finished_at", "last_status", "last_error")


def list_subscriptions(conn: Any, workspace_id: UUID) -> list[dict[str, Any]]:
    rows = conn.execute(f"SELECT {', '.join(SUBSCRIPTION_COLUMNS)} FROM commhub_webhook_subscriptions"
                        " WHERE workspace_id = %s ORDER BY created_at, subscription_id", (workspace_id,)).fetchall()
    return [dict(zip(SUBSCRIPTION_COLUMNS, row)) for row in rows]


def get_subscription(conn: Any, workspace_id: UUID, subscription_id: UUID) -> dict[str, Any] | None:
    row = conn.execute(f"SELECT {', '.join(SUBSCRIPTION_COLUMNS)} FROM commhub_webhook_subscriptions"
                       " WHERE workspace_id = %s AND subscription_id = %s", (workspace_id, subscription_id)).fetchone()
    return dict(zip(SUBSCRIPTION_COLUMNS, row)) if row else None


def list_deliveries(conn: Any, workspace_id: UUID, subscription_id: UUID, *, state: str | None, limit: int,
                    before: tuple[Any, UUID] | None) -> list[dict[str, Any]]:
    """Newest first, each with its attempts (oldest first); ``before`` is the last row of the previous page."""
    clauses, params = ["workspace_id = %s", "subscription_id = %s"], [workspace_id, subscription_id]
    if state is not None:
        clauses.append("state = %s")
        params.append(state)
    if before is not None:
        clauses.append("(created_at, delivery_id) < (%s, %s)")
        params.extend(before)
    rows = conn.execute(f"SELECT {', '.join(DELIVERY_COLUMNS)} FROM commhub_webhook_deliveries"
                        f" WHERE {' AND '.join(clauses)} ORDER BY created_at DESC, delivery_id DESC LIMIT %s",
                        (*params, limit)).fetchall()
    deliveries = [dict(zip(DELIVERY_COLUMNS, row)) for row in rows]
    attempts: dict[UUID, list[dict[str, Any]]] = {d["delivery_id"]: [] for d in deliveries}
    for row in conn.execute("SELECT delivery_id, attempt, started_at, duration_ms, http_status, error, next_retry_at"
                            " FROM commhub_webhook_attempts WHERE delivery_id = ANY(%s) ORDER BY attempt",
                            (list(attempts),)).fetchall():
        attempts[row[0]].append(dict(zip(("attempt", "at", "duration_ms", "http_status", "error",
                                          "next_retry_at"), row[1:])))
    for delivery in deliveries:
        delivery["attempt_log"] = attempts[delivery["delivery_id"]]
    return deliveries
