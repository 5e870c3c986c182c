"""Pushing appointments to staff calendars, against PostgreSQL and a real CalDAV server (Radicale) on
loopback: book, reschedule, reassign and cancel reach the calendar; an edit made in the calendar is
merged, not clobbered; a calendar server that is down is retried until it is back; the contact's
name goes out only when the workspace asks; an erasure deletes the events; a rebuild pushes nothing."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from adapters.caldav import CaldavAccount, CalendarCheckError, check_calendar
from adapters.caldav_worker import CaldavWorker
from adapters.destinations import guarded_client
from adapters.postgres import Database
from api.bootstrap import Hub, bootstrap
from api.settings import Settings
from domain.appointments_app import Booking
from domain.calendar_sync import resource_name
from tests.integration.helpers import Person, new_person, new_workspace, pg_dump
from tests.integration.test_erasure_workflow import erase
from tests.radicale_server import Radicale

START = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=2)


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Radicale]:
    server = Radicale(tmp_path_factory.mktemp("radicale")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, server_url: str, session_kek: str) -> Iterator[Hub]:
    """A schema of our own: no other test's worker touches these calendar pushes."""
    database = Database(server_url, f"test_{uuid.uuid4().hex[:12]}")
    database.ensure_schema()
    settings = Settings(database_url=database.url, db_schema=database.schema, kek=session_kek,
                        data_dir=tmp_path_factory.mktemp("caldav-hub"))
    with bootstrap(settings, database=database) as running:
        yield running
    database.drop_schema()


class Clinic:
    """A workspace with one contact and a staff member whose calendar is connected on Radicale."""

    def __init__(self, hub: Hub, radicale: Radicale, worker: CaldavWorker) -> None:
        self.hub, self.radicale, self.worker = hub, radicale, worker
        self.workspace_id = new_workspace(hub.app)
        self.person: Person = new_person(hub.app, self.workspace_id, "Ada")
        self.staff_id, self.user, self.calendar = self.add_staff()

    def add_staff(self) -> tuple[uuid.UUID, str, str]:
        staff_id = self.hub.app.add_staff(workspace_id=self.workspace_id, staff_id=uuid.uuid4(), name="Dr Who",
                                          email=f"{uuid.uuid4().hex[:8]}@clinic.example", role="agent",
                                          password_hash="x", now=now())
        user, password = self.radicale.new_user()
        calendar = self.radicale.make_calendar(user)
        self.hub.extras["caldav"].save(self.workspace_id, staff_id, CaldavAccount(calendar, user, password), None, now())
        return staff_id, user, calendar

    def book(self, starts: datetime = START, staff_id: uuid.UUID | None = None, service: str = "IVF consultation") \
            -> uuid.UUID:
        return self.hub.app.book_appointment(self.workspace_id, uuid.uuid4(), Booking(
            contact_id=self.person.contact_id, service=service, starts_at=starts, ends_at=starts + timedelta(minutes=45),
            staff_id=staff_id or self.staff_id, location="Room 2"), actor_id=None, now=now())

    def reschedule(self, appointment_id: uuid.UUID, starts: datetime, staff_id: uuid.UUID | None = None) -> None:
        self.hub.app.reschedule_appointment(self.workspace_id, appointment_id, starts_at=starts,
                                            ends_at=starts + timedelta(minutes=45), time_zone=None,
                                            staff_id=staff_id or self.staff_id, location=None, actor_id=None, now=now())

    def sync(self) -> None:
        """Let the projection see every event, then the worker push until nothing is due."""
        self.hub.projections.catch_up()
        while self.worker.run_once():
            pass

    def url(self, appointment_id: uuid.UUID, staff_id: uuid.UUID | None = None, calendar: str | None = None) -> str:
        return f"{calendar or self.calendar}{resource_name(appointment_id, staff_id or self.staff_id)}.ics"

    def vevent(self, appointment_id: uuid.UUID, user: str | None = None, calendar: str | None = None,
               staff_id: uuid.UUID | None = None):
        found = self.radicale.event(user or self.user, self.url(appointment_id, staff_id, calendar))
        if found is None:
            return None
        [vevent] = [c for c in found.subcomponents if c.name == "VEVENT"]
        return vevent

    def status(self, appointment_id: uuid.UUID) -> list[dict]:
        return self.hub.extras["caldav"].statuses(self.workspace_id, appointment_id=appointment_id)


def now() -> datetime:
    return datetime.now(timezone.utc)


@pytest.fixture
def clinic(hub: Hub, radicale: Radicale) -> Clinic:
    # Radicale listens on loopback: this worker may reach it (the default refuses, see the test below)
    return Clinic(hub, radicale, CaldavWorker(hub.app, hub.database, hub.extras["caldav"], allow_private=True,
                                              base_delay=0.01))


def test_a_booking_appears_in_the_staff_calendar_with_time_and_place_and_nothing_personal(clinic):
    appointment_id = clinic.book()
    clinic.sync()
    vevent = clinic.vevent(appointment_id)
    assert vevent is not None
    assert vevent.decoded("dtstart") == START and vevent.decoded("dtend") == START + timedelta(minutes=45)
    assert (str(vevent["summary"]), str(vevent["location"]), str(vevent["status"])) == (
        "Appointment", "Room 2", "TENTATIVE")
    assert str(appointment_id) in str(vevent["description"])
    raw = clinic.radicale.get(clinic.user, clinic.url(appointment_id)).text
    for secret in (*clinic.person.secrets, "IVF", "Quintessa"):
        assert secret not in raw
    [status] = clinic.status(appointment_id)
    assert (status["state"], status["http_status"], status["attempts"]) == ("synced", 201, 1)


def test_a_reschedule_updates_the_same_event_and_a_cancellation_removes_it(clinic):
    appointment_id = clinic.book()
    clinic.sync()
    uid = str(clinic.vevent(appointment_id)["uid"])
    later = START + timedelta(days=1, hours=2)
    clinic.reschedule(appointment_id, later)
    clinic.sync()
    vevent = clinic.vevent(appointment_id)
    assert str(vevent["uid"]) == uid and vevent.decoded("dtstart") == later and int(vevent["sequence"]) == 1
    assert clinic.radicale.hrefs(clinic.user, clinic.calendar) == [f"{resource_name(appointment_id, clinic.staff_id)}.ics"]

    clinic.hub.app.cancel_appointment(clinic.workspace_id, appointment_id, "Patient phoned", None, now())
    clinic.sync()
    assert clinic.vevent(appointment_id) is None
    assert clinic.radicale.hrefs(clinic.user, clinic.calendar) == []
    assert clinic.status(appointment_id)[0]["state"] == "deleted"


def test_reassigning_moves_the_event_from_the_old_calendar_to_the_new_one(clinic):
    appointment_id = clinic.book()
    clinic.sync()
    other_id, other_user, other_calendar = clinic.add_staff()
    clinic.reschedule(appointment_id, START, staff_id=other_id)
    clinic.sync()
    assert clinic.vevent(appointment_id) is None
    moved = clinic.vevent(appointment_id, other_user, other_calendar, other_id)
    assert moved is not None and moved.decoded("dtstart") == START
    assert {(s["staff_id"], s["state"]) for s in clinic.status(appointment_id)} == {
        (clinic.staff_id, "deleted"), (other_id, "synced")}


def test_an_edit_made_in_the_calendar_is_refetched_and_kept_not_clobbered(clinic):
    appointment_id = clinic.book()
    clinic.sync()
    url = clinic.url(appointment_id)
    current = clinic.radicale.get(clinic.user, url)
    edited = current.text.replace("END:VEVENT", "CATEGORIES:Bring X-rays\r\nEND:VEVENT")
    put = httpx.put(url, content=edited, auth=(clinic.user, clinic.radicale.users[clinic.user]),
                    headers={"If-Match": current.headers["ETag"], "Content-Type": "text/calendar"})
    assert put.status_code in (201, 204)
    later = START + timedelta(hours=5)
    clinic.reschedule(appointment_id, later)
    clinic.sync()
    vevent = clinic.vevent(appointment_id)
    assert vevent.decoded("dtstart") == later and "Bring X-rays" in vevent["categories"].to_ical().decode()
    [status] = clinic.status(appointment_id)
    assert status["state"] == "synced" and status["conflicts"] == 1


def test_an_event_deleted_in_the_calendar_is_created_again_on_the_next_change(clinic):
    appointment_id = clinic.book()
    clinic.sync()
    assert httpx.delete(clinic.url(appointment_id), auth=(clinic.user, clinic.radicale.users[clinic.user])).status_code \
        in (200, 204)
    clinic.hub.app.confirm_appointment(clinic.workspace_id, appointment_id, None, now())
    clinic.sync()
    assert str(clinic.vevent(appointment_id)["status"]) == "CONFIRMED"


def test_a_calendar_server_that_is_down_is_retried_with_backoff_and_gets_the_latest_state_once_back(clinic):
    appointment_id = clinic.book()
    clinic.hub.projections.catch_up()
    clock = [now()]
    worker = CaldavWorker(clinic.hub.app, clinic.hub.database, clinic.hub.extras["caldav"], allow_private=True,
                          base_delay=30, timeout=2, clock=lambda: clock[0])
    clinic.radicale.stop()
    try:
        assert worker.run_once() >= 1
        [status] = clinic.status(appointment_id)
        assert (status["state"], status["attempts"], status["http_status"]) == ("retrying", 1, None)
        assert worker.run_once() == 0, "retried before its backoff"
        later = START + timedelta(hours=3)
        clock[0] += timedelta(minutes=2)
        worker.run_once()
        clinic.reschedule(appointment_id, later)  # while the push waits: the calendar gets this time, not the first
        clinic.hub.projections.catch_up()
        assert clinic.status(appointment_id)[0]["attempts"] == 2
    finally:
        clinic.radicale.start()
    clock[0] += timedelta(minutes=5)
    assert clinic.vevent(appointment_id) is None
    while worker.run_once():
        pass
    vevent = clinic.vevent(appointment_id)
    assert vevent is not None and vevent.decoded("dtstart") == later
    [status] = clinic.status(appointment_id)
    assert (status["state"], status["attempts"]) == ("synced", 3)


def test_a_push_that_keeps_failing_is_marked_failed_and_listed(clinic):
    worker = CaldavWorker(clinic.hub.app, clinic.hub.database, clinic.hub.extras["caldav"], allow_private=True,
                          base_delay=0.001, max_attempts=2, timeout=1)
    appointment_id = clinic.book()
    clinic.hub.projections.catch_up()
    clinic.radicale.stop()
    try:
        for _ in range(10):
            worker.run_once()
            if clinic.status(appointment_id)[0]["state"] == "failed":
                break
    finally:
        clinic.radicale.start()
    [status] = clinic.status(appointment_id)
    assert (status["state"], status["attempts"], status["http_status"]) == ("failed", 2, None)
    failed = clinic.hub.extras["caldav"].statuses(clinic.workspace_id, state="failed")
    assert [s["appointment_id"] for s in failed] == [appointment_id]
    assert worker.run_once() == 0 and clinic.vevent(appointment_id) is None


def test_a_calendar_on_a_private_address_gets_nothing_unless_the_operator_allows_it(clinic):
    # Connected while allowed (or its DNS name now points at loopback): a worker with the default
    # refuses to connect, so the push is retried and in the end failed, and the calendar gets nothing.
    worker = CaldavWorker(clinic.hub.app, clinic.hub.database, clinic.hub.extras["caldav"], base_delay=0.001,
                          max_attempts=2, timeout=2)
    appointment_id = clinic.book()
    clinic.hub.projections.catch_up()
    for _ in range(10):
        worker.run_once()
        if clinic.status(appointment_id)[0]["state"] == "failed":
            break
    [status] = clinic.status(appointment_id)
    assert (status["state"], status["attempts"], status["http_status"]) == ("failed", 2, None)
    assert clinic.radicale.hrefs(clinic.user, clinic.calendar) == []
    account = CaldavAccount(clinic.calendar, clinic.user, clinic.radicale.users[clinic.user])
    with guarded_client(allow_private=False, timeout=5) as client, pytest.raises(CalendarCheckError) as refused:
        check_calendar(client, account)
    assert refused.value.reason == "destination_refused"
    with guarded_client(allow_private=True, timeout=5) as client:
        check_calendar(client, account)
    clinic.reschedule(appointment_id, START + timedelta(hours=1))  # a failed push waits for the next change
    clinic.sync()  # by the fixture's worker, which may reach loopback
    assert clinic.vevent(appointment_id) is not None


def test_a_wrong_password_is_refused_before_anything_is_saved_and_a_failed_push_says_401(clinic):
    account = CaldavAccount(clinic.calendar, clinic.user, "wrong password")
    with httpx.Client(timeout=5) as client, pytest.raises(CalendarCheckError) as refused:
        check_calendar(client, account)
    assert refused.value.reason == "unauthorised"
    # the password changed after connecting: the push fails at once (no retry can fix a 401)
    clinic.hub.extras["caldav"].save(clinic.workspace_id, clinic.staff_id, account, None, now())
    appointment_id = clinic.book()
    clinic.sync()
    [status] = clinic.status(appointment_id)
    assert (status["state"], status["http_status"], status["attempts"]) == ("failed", 401, 1)


def test_two_workers_push_one_event_and_a_rebuild_pushes_nothing_again(clinic):
    appointment_id = clinic.book()
    clinic.hub.projections.catch_up()
    workers = [CaldavWorker(clinic.hub.app, clinic.hub.database, clinic.hub.extras["caldav"], allow_private=True)
               for _ in range(2)]
    start = threading.Barrier(2)

    def run(worker: CaldavWorker) -> None:
        start.wait()
        worker.run_once()

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    [status] = clinic.status(appointment_id)
    assert (status["state"], status["conflicts"]) == ("synced", 0)
    etag = clinic.radicale.get(clinic.user, clinic.url(appointment_id)).headers["ETag"]

    clinic.hub.projections.rebuild("caldav_pushes")
    clinic.sync()
    assert clinic.radicale.get(clinic.user, clinic.url(appointment_id)).headers["ETag"] == etag
    assert clinic.status(appointment_id)[0]["state"] == "synced"


def test_the_contact_name_goes_out_only_when_the_workspace_asks_and_an_erasure_deletes_the_events(clinic):
    appointment_id = clinic.book()
    clinic.sync()
    assert str(clinic.vevent(appointment_id)["summary"]) == "Appointment"
    clinic.hub.extras["caldav"].set_include_contact_name(clinic.workspace_id, True, now())
    clinic.sync()
    assert str(clinic.vevent(appointment_id)["summary"]) == f"Appointment: {clinic.person.name}"
    second = clinic.book(START + timedelta(days=3))
    clinic.hub.projections.catch_up()  # queued, not pushed yet when the erasure arrives

    assert erase(clinic.hub, clinic.workspace_id, clinic.person.contact_id).status == "completed"
    clinic.sync()
    assert clinic.vevent(appointment_id) is None and clinic.vevent(second) is None
    assert [s["state"] for s in clinic.status(appointment_id) + clinic.status(second)] == ["deleted", "not_pushed"]
    assert clinic.person.name not in clinic.radicale.stored_text()


def test_an_appointment_that_ended_before_the_calendar_was_connected_is_not_pushed(hub, radicale):
    clinic = Clinic.__new__(Clinic)
    clinic.hub, clinic.radicale = hub, radicale
    clinic.worker = CaldavWorker(hub.app, hub.database, hub.extras["caldav"], allow_private=True)
    clinic.workspace_id = new_workspace(hub.app)
    clinic.person = new_person(hub.app, clinic.workspace_id, "Bo")
    staff_id = hub.app.add_staff(workspace_id=clinic.workspace_id, staff_id=uuid.uuid4(), name="Dr No",
                                 email=f"{uuid.uuid4().hex[:8]}@clinic.example", role="agent", password_hash="x",
                                 now=now())
    past = clinic.book(now() - timedelta(days=2), staff_id=staff_id)
    upcoming = clinic.book(START, staff_id=staff_id)
    clinic.sync()
    assert {s["state"] for s in hub.extras["caldav"].statuses(clinic.workspace_id)} == {"not_connected"}
    user, password = radicale.new_user()
    calendar = radicale.make_calendar(user)
    hub.extras["caldav"].save(clinic.workspace_id, staff_id, CaldavAccount(calendar, user, password), None, now())
    clinic.sync()
    assert radicale.hrefs(user, calendar) == [f"{resource_name(upcoming, staff_id)}.ics"]
    assert hub.extras["caldav"].statuses(clinic.workspace_id, appointment_id=past)[0]["state"] == "skipped"


def test_the_connection_is_stored_sealed(clinic):
    dump = pg_dump(clinic.hub.database)
    assert clinic.radicale.users[clinic.user] not in dump and clinic.user not in dump
    connection = clinic.hub.extras["caldav"].get(clinic.staff_id)
    assert connection.account.password == clinic.radicale.users[clinic.user]


def test_setup_tells_a_missing_collection_and_an_address_book_from_a_calendar(clinic):
    password = clinic.radicale.users[clinic.user]
    address_book = clinic.radicale.make_address_book(clinic.user)
    reasons = []
    with httpx.Client(timeout=5) as client:
        check_calendar(client, CaldavAccount(clinic.calendar, clinic.user, password))
        for url in (clinic.calendar.replace("/work/", "/missing/"), address_book, "http://127.0.0.1:9/nothing/"):
            with pytest.raises(CalendarCheckError) as refused:
                check_calendar(client, CaldavAccount(url, clinic.user, password))
            reasons.append(refused.value.reason)
    assert reasons == ["not_found", "not_a_calendar", "unreachable"]


def test_a_rectified_name_reaches_the_calendar_only_where_names_are_included(clinic):
    appointment_id = clinic.book()
    clinic.sync()
    etag = clinic.radicale.get(clinic.user, clinic.url(appointment_id)).headers["ETag"]
    clinic.hub.app.rectify_contact(clinic.workspace_id, clinic.person.contact_id, {"name": "Ada Byron"}, None, now())
    clinic.sync()
    assert clinic.radicale.get(clinic.user, clinic.url(appointment_id)).headers["ETag"] == etag  # nothing to change
    clinic.hub.extras["caldav"].set_include_contact_name(clinic.workspace_id, True, now())
    clinic.sync()
    clinic.hub.app.rectify_contact(clinic.workspace_id, clinic.person.contact_id, {"name": "Ada King"}, None, now())
    clinic.sync()
    assert str(clinic.vevent(appointment_id)["summary"]) == "Appointment: Ada King"


def test_rebuilding_the_pushes_projection_gives_the_rows_running_live_gave(clinic):
    appointment_id = clinic.book()
    other_id, _, _ = clinic.add_staff()
    clinic.reschedule(appointment_id, START + timedelta(hours=1), staff_id=other_id)
    clinic.hub.app.confirm_appointment(clinic.workspace_id, appointment_id, None, now())
    clinic.sync()

    def rows() -> list[tuple]:
        with clinic.hub.database.connect() as conn:
            return conn.execute("SELECT appointment_id, staff_id, workspace_id, contact_id, changes, erased, changed_at"
                                " FROM commhub_caldav_pushes ORDER BY 1, 2").fetchall()

    live = rows()
    assert {(r[0], r[1], r[4]) for r in live if r[0] == appointment_id} == {
        (appointment_id, clinic.staff_id, 3), (appointment_id, other_id, 2)}
    clinic.hub.projections.rebuild("caldav_pushes")
    assert rows() == live
