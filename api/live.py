"""Live updates: each API process tails the event log (LISTEN/NOTIFY) and pushes each workspace's
updates to its own agent websockets; a reconnecting client resumes from its last seen position.

Updates are published only once every projection has applied them (whichever process runs the
projections), so a client that re-reads the REST API on an update always sees it there. When this
process runs the projections, its runner hands each batch over right after committing it (the
events already decoded), so the feed does not read them again; batches of other processes' runners
are read from the log."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.utils import get_topic

from adapters.postgres import KEEPALIVE, Database
from domain.application import CommHub
from domain.appointment import Appointment
from domain.audit import AuditEntry
from domain.contact import Contact
from domain.conversation import Conversation
from api.present import plain
from projections.runner import ProjectionRunner, Reached, projected_channel, projected_floor
from projections.timeline import KINDS

log = logging.getLogger(__name__)

BACKFILL_LIMIT = 10_000
QUEUE_LIMIT = BACKFILL_LIMIT  # updates waiting for one socket; a socket further behind is dropped (OVERFLOW)
HANDOFF_WAIT = 0.05  # how long a NOTIFY of this process's runner waits for its batch to be handed over
MESSAGE_EVENTS = (Conversation.MessageReceived, Conversation.MessageSent, Conversation.MessageRefused)
# Appointment fields an agent's page may get live: service, notes and reasons are sealed, so they are
# read through the REST API (where erasure blanks them), never pushed.
APPOINTMENT_FIELDS = ("starts_at", "ends_at", "time_zone", "staff_id", "location", "via", "channel", "planned_at",
                      "http_status")
APPOINTMENT_STATUS = {Appointment.Booked: "booked", Appointment.Rescheduled: "booked",
                      Appointment.Cancelled: "cancelled", Appointment.Confirmed: "confirmed",
                      Appointment.CheckedIn: "checked_in", Appointment.Completed: "completed",
                      Appointment.MarkedNoShow: "no_show"}


# Audit entries never become updates (to_update), and under load they are a third of the log:
# skipped by their topic, without decoding or unsealing them.
AUDIT_TOPIC = get_topic(AuditEntry)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Update(dict[str, Any]):
    """A live update, put as one object into every subscribed socket's queue: its JSON text is
    made once, by the first socket that sends it, however many agents are connected."""

    _text: str | None = None

    def text(self) -> str:
        if self._text is None:
            self._text = json.dumps(self, separators=(",", ":"), ensure_ascii=False)  # as Starlette's send_json
        return self._text


def to_update(event: Any, position: int) -> dict[str, Any] | None:
    """What an agent's browser needs to know about an event, or None if nothing."""
    if isinstance(event, Conversation.Event) or isinstance(event, Conversation.Started):
        update = {
            "type": "conversation." + _snake(type(event).__name__), "position": position,
            "conversation_id": str(event.originator_id), "contact_id": str(event.contact_id),
            "at": event.timestamp.isoformat(),
        }
        for field in ("message_id", "body", "author_id", "status", "error_code", "reason", "assignee_id", "label",
                      "note_id", "text", "channel", "until", "attachments", "kind", "duration"):
            if field in event.__dict__:
                update[field] = plain(event.__dict__[field])
        if isinstance(event, MESSAGE_EVENTS):
            update["direction"] = "in" if isinstance(event, Conversation.MessageReceived) else "out"
        return update
    if isinstance(event, (Contact.Event, Contact.Created)):
        return {"type": "contact." + _snake(type(event).__name__), "position": position,
                "contact_id": str(event.originator_id), "at": event.timestamp.isoformat()}
    if isinstance(event, (Appointment.Event, Appointment.Booked)) and type(event) in KINDS:
        update = {"type": KINDS[type(event)], "position": position, "appointment_id": str(event.originator_id),
                  "contact_id": str(event.contact_id), "at": event.timestamp.isoformat()}
        if type(event) in APPOINTMENT_STATUS:
            update["status"] = APPOINTMENT_STATUS[type(event)]
        for field in APPOINTMENT_FIELDS:
            if field in event.__dict__:
                update[field] = plain(event.__dict__[field])
        return update
    return None


OVERFLOW = Update(type="overflow")
"""Put alone in a socket's queue in place of its pending updates when it fell ``QUEUE_LIMIT`` behind
(a client that reads nothing, so the server's writes to it wait): its sender closes it with 1013,
and the client resumes from its last position on reconnecting. Never sent to a client."""

CLOSE_OVERFLOW = (1013, "too far behind; reconnect with 'after'")


def typing_channel(database: Database) -> str:
    """NOTIFY channel carrying typing indicators (ids only) between processes."""
    return f"commhub_typing_{database.schema}"


class LiveFeed:
    """Subscribers are keyed by workspace id (agents: every update of the workspace) or by
    conversation id (widgets: that conversation's updates only)."""

    def __init__(self, app: CommHub, database: Database, runner: ProjectionRunner | None = None, *,
                 queue_limit: int = QUEUE_LIMIT) -> None:
        self.app = app
        self.database = database
        self.queue_limit = queue_limit
        self.runner = runner  # the projections of this process, if it runs them
        self.position = 0
        self.typing_channel = typing_channel(database)
        self._subscribers: dict[UUID, set[asyncio.Queue[Update]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        self._publishing = threading.Lock()  # orders the two ways updates are published
        self.reached = Reached()  # what ``position`` has reached, for those waiting on it

    def start(self, loop: asyncio.AbstractEventLoop) -> LiveFeed:
        self._loop = loop
        self.position = self.floor()
        self.reached.advance(self.position)
        if self.runner is not None:
            self.runner.on_applied = self.take
        self._thread = threading.Thread(target=self._run, name="commhub-live-feed", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.runner is not None and self.runner.on_applied == self.take:
            self.runner.on_applied = None
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def wait_for(self, position: int, timeout: float) -> bool:
        """Block until the read models (built by whichever process) include ``position``."""
        return self.reached.wait_for(position, timeout)

    def subscribe(self, workspace_id: UUID) -> asyncio.Queue[Update]:
        queue: asyncio.Queue[Update] = asyncio.Queue()
        self._subscribers.setdefault(workspace_id, set()).add(queue)
        return queue

    def unsubscribe(self, workspace_id: UUID, queue: asyncio.Queue[Update]) -> None:
        queues = self._subscribers.get(workspace_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                self._subscribers.pop(workspace_id, None)

    @property
    def connections(self) -> int:
        return sum(len(q) for q in self._subscribers.values())

    def floor(self) -> int:
        """The position up to which every read model is complete."""
        with self.database.connection(autocommit=True) as conn:
            return projected_floor(conn)

    def backfill(self, workspace_id: UUID, after: int, upto: int | None = None) -> list[dict[str, Any]] | None:
        """Updates for one workspace after ``after``; None when too much was missed (reload instead)."""
        head = upto if upto is not None else self.floor()
        if head - after > BACKFILL_LIMIT:
            return None
        updates: list[dict[str, Any]] = []
        start = after + 1
        while start <= head:
            page = self.app.recorder.select_notifications(start=start, limit=500, stop=head)
            if not page:
                break
            for notification in page:
                if self._workspace_of(notification) != workspace_id:
                    continue  # other tenants' events are never unsealed for this client
                update = to_update(self.app.mapper.to_domain_event(notification), notification.id)
                if update is not None:
                    updates.append(update)
            start = page[-1].id + 1
        return updates

    def _workspace_of(self, notification: Any) -> UUID | None:
        """The event's workspace, read from its stored state without unsealing anything."""
        try:
            state = self.app.mapper.transcoder.decode(notification.state)
        except Exception:  # an unreadable event concerns nobody's socket
            return None
        workspace_id = state.get("workspace_id") if isinstance(state, dict) else None
        return workspace_id if isinstance(workspace_id, UUID) else None

    def _dispatch(self, key: UUID, update: Update) -> None:
        for queue in list(self._subscribers.get(key, ())):
            if queue.qsize() < self.queue_limit:
                queue.put_nowait(update)
            else:
                self._overflow(key, queue)

    def _overflow(self, key: UUID, queue: asyncio.Queue[Update]) -> None:
        """Stop queueing for a socket that fell too far behind, and free what waits for it: memory
        must not grow for ever with a client that stopped reading."""
        self.unsubscribe(key, queue)
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(OVERFLOW)
        log.warning("a live socket fell %d updates behind; closing it", self.queue_limit)

    def _publish(self, notifications: list[Any]) -> None:
        """Publish stored events read from the log (all of them up to the floor, in order)."""
        assert self._loop is not None
        with self._publishing:
            out: list[tuple[list[UUID], Update]] = []
            try:
                for notification in notifications:
                    if notification.id <= self.position:
                        continue  # handed over by the runner meanwhile
                    if notification.topic == AUDIT_TOPIC:
                        self.position = notification.id
                        continue
                    workspace_id = self._workspace_of(notification)
                    keys = [k for k in (workspace_id, notification.originator_id) if k in self._subscribers]
                    if workspace_id is not None and keys:
                        try:
                            event = self.app.mapper.to_domain_event(notification)
                        except Exception as error:  # as the projections skip it, so does the feed: one
                            # unreadable event must not stop every socket (nor make it read it for ever)
                            log.warning("live feed skipped unreadable event %d (%s)", notification.id,
                                        type(error).__name__)
                        else:
                            self._collect(out, keys, event, notification.id)
                    self.position = notification.id
            finally:  # what was collected goes out even if a later event fails to decode
                self._send(out)
            self.reached.advance(self.position)

    def take(self, start: int, events: list[tuple[int, Any]]) -> None:
        """Publish a batch this process's runner has just committed: every read model now includes
        ``events`` (position, decoded event or None), which are all the events after ``start``."""
        assert self._loop is not None
        with self._publishing:
            if not start <= self.position < events[-1][0]:
                return  # not the next batch for this feed: it reads the log instead
            out: list[tuple[list[UUID], Update]] = []
            try:
                for position, event in events:
                    if position <= self.position:
                        continue
                    workspace_id = getattr(event, "workspace_id", None)
                    if isinstance(workspace_id, UUID):
                        keys = [k for k in (workspace_id, event.originator_id) if k in self._subscribers]
                        if keys:
                            self._collect(out, keys, event, position)
                    self.position = position
            finally:
                self._send(out)
            self.reached.advance(self.position)

    @staticmethod
    def _collect(out: list[tuple[list[UUID], Update]], keys: list[UUID], event: Any, position: int) -> None:
        found = to_update(event, position)
        if found is not None:
            out.append((keys, Update(found)))

    def _send(self, out: list[tuple[list[UUID], Update]]) -> None:
        """Hand a batch's updates to the event loop in one wake-up (a socket finds them queued together
        and may send them as one frame, see ``api.routes.agent_socket``)."""
        if out:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._dispatch_all, out)

    def _dispatch_all(self, out: list[tuple[list[UUID], Update]]) -> None:
        for keys, update in out:
            for key in keys:
                self._dispatch(key, update)

    def publish_typing(self, workspace_id: UUID, conversation_id: UUID, who: str) -> None:
        """Tell every process that someone ("agent" or "visitor") is typing in a conversation."""
        payload = json.dumps({"w": str(workspace_id), "c": str(conversation_id), "who": who})
        with self.database.connection(autocommit=True) as conn:
            conn.execute("SELECT pg_notify(%s, %s)", (self.typing_channel, payload))

    def _relay_typing(self, payload: str) -> None:
        """Agents hear visitors type (in their workspace); a widget hears agents type (in its conversation)."""
        try:
            note = json.loads(payload)
            key = UUID(note["w"]) if note["who"] == "visitor" else UUID(note["c"])
            update = Update(type="conversation.typing", conversation_id=note["c"], who=note["who"])
        except (ValueError, KeyError, TypeError):
            return
        if key in self._subscribers and self._loop is not None:
            self._loop.call_soon_threadsafe(self._dispatch, key, update)

    def _announced(self, notify: Any) -> int | None:
        """The floor a NOTIFY of the projections announces (None when its payload says nothing: read
        the floor instead). At or below ``self.position`` there is nothing new for this feed — also
        when this process's own runner handed that batch over, which it may still be doing."""
        try:
            floor = int(notify.payload)
        except ValueError:
            return None
        if floor > self.position and self.runner is not None and notify.pid in self.runner.backend_pids:
            self.wait_for(floor, HANDOFF_WAIT)  # its commit is announced before the handover
        return floor

    def _run(self) -> None:
        backoff = 0.2
        while not self._stopping.is_set():
            try:
                with self.database.connect(autocommit=True, **KEEPALIVE) as listener:
                    projected = projected_channel(self.database)
                    for channel in (projected, self.typing_channel):
                        listener.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel)))
                    self.connected.set()
                    backoff = 0.2
                    check = True  # read the floor on (re)connecting: announcements may have been missed
                    announced = 0  # the highest floor a NOTIFY gave since the last read: no query needed
                    while not self._stopping.is_set():
                        if check:
                            check = False
                            floor = announced or projected_floor(listener)
                            announced = 0
                            if floor > self.position:
                                page = self.app.recorder.select_notifications(
                                    start=self.position + 1, limit=500, stop=floor)
                                if page:
                                    self._publish(page)
                                    if self.position < floor:  # a full page: the rest up to the floor next
                                        check, announced = True, floor
                                    continue
                        quiet = True
                        for notify in listener.notifies(timeout=0.5, stop_after=1):
                            quiet = False
                            if notify.channel == self.typing_channel:
                                self._relay_typing(notify.payload)
                            elif notify.channel == projected:
                                floor = self._announced(notify)
                                if floor is None:
                                    check = True
                                elif floor > self.position:
                                    check, announced = True, max(announced, floor)
                        check = check or quiet  # nothing for a while: look anyway
            except Exception as error:  # reconnect after a database restart; what was missed is read on return
                log.warning("live feed lost the database (%s); reconnecting in %.1fs", type(error).__name__, backoff)
            self.connected.clear()
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, 5.0)
