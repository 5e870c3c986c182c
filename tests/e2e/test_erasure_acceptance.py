"""The acceptance test of erasure, against a real ``commhub serve`` process: after a person is
talked to on every channel there is and then erased, no dump of the database, no line the server
logged and no file in its data directory holds anything of theirs, while another person is intact.

Each channel is one function in ``CHANNELS``, given the clinic (its API client and the fake
providers it talks to) and the person: add the next channel (voice, social…) as another
function that makes the person write in or be written to and records what it introduced.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from email.message import EmailMessage
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from api.routes.email import INBOUND_PATH, signature_for
from tests.e2e.api_support import Api, demo_credentials, demo_login, login, phone_number, unique, wait_for
from tests.e2e.conftest import ROOT, Server, start_server, stop_server
from tests.e2e.widget_support import Visitor
from tests.fake_meta import FakeMeta, dm, wa_message
from tests.fake_twilio import FakeTwilio
from tests.integration.helpers import count_events, pg_dump
from tests.radicale_server import Radicale

CONTACTS = "/api/v1/contacts"
PUBLIC = "https://hub.clinic.example"
EMAIL_SECRET = "acceptance-inbound-secret-0042"
INBOUND_ADDRESS = "front-desk@clinic.example"
WIDGET_ORIGIN = "https://www.clinic.example"


@dataclass
class Person:
    """Someone the business talks to, and every piece of their data the test introduced."""

    name: str
    phone: str
    email: str
    contact_id: str = ""
    secrets: list[str] = field(default_factory=list)
    attachments: list[bytes] = field(default_factory=list)
    conversations: set[str] = field(default_factory=set)

    @classmethod
    def new(cls, label: str) -> Person:
        token = uuid.uuid4().hex[:8]
        return cls(name=f"{label} Zabriskie-{token}", phone=phone_number(), email=f"{label.lower()}.{token}@example.net")

    def said(self, text: str) -> str:
        self.secrets.append(text)
        return text


@dataclass
class Clinic:
    """The business side: the owner's API client, and the fake providers the server talks to."""

    api: Api
    twilio: FakeTwilio
    sms_number: str
    server: Server
    widget_key: str
    meta: FakeMeta | None = None
    meta_accounts: dict[str, str] = field(default_factory=dict)
    calendar: tuple[Radicale, str, str] | None = None  # the owner's CalDAV calendar: server, user, collection URL


# The channels that exist now. Each makes ``person`` write in (or be written to) and records what it introduced.

def twilio_sms(clinic: Clinic, person: Person) -> None:
    """A text through Twilio's signed webhook (the reply to it goes out through the fake Twilio)."""
    body = person.said(f"Running late, sorry {uuid.uuid4().hex[:6]}")
    answer = clinic.twilio.inbound_sms(PUBLIC, sender=person.phone, to=clinic.sms_number, body=body)
    assert answer.status_code == 200, answer.text
    conversation = wait_for(lambda: next((c for c in clinic.api.ok("GET", "/api/v1/conversations?view=all&limit=200")["items"]
                                          if c["contact_id"] == person.contact_id and c["channel"] == "sms"), None),
                            what="the texted conversation")
    person.conversations.add(conversation["conversation_id"])


def sandbox_sms(clinic: Clinic, person: Person) -> None:
    api = clinic.api
    scan = f"%PDF-1.7 MRI of {person.name} lumbar spine".encode()
    person.attachments.append(scan)
    sent = api.inbound(person.phone, person.said(f"My back hurts since Monday, {uuid.uuid4().hex[:6]}"),
                       attachments=[{"filename": person.said(f"mri-{uuid.uuid4().hex[:6]}.pdf"),
                                     "content_type": "application/pdf",
                                     "content_base64": base64.b64encode(scan).decode()}])
    assert sent["contact_id"] == person.contact_id
    person.conversations.add(sent["conversation_id"])


def email_webhook(clinic: Clinic, person: Person) -> None:
    api = clinic.api
    """A signed raw MIME email through the inbound webhook, with a subject and an attachment."""
    letter = f"%PDF-1.4 referral letter for {person.name}".encode()
    person.attachments.append(letter)
    mail = EmailMessage()
    mail["From"], mail["To"] = person.email, INBOUND_ADDRESS
    mail["Subject"] = person.said(f"Referral from Dr Okafor {uuid.uuid4().hex[:6]}")
    mail["Message-ID"] = f"<{uuid.uuid4().hex}@example.net>"
    mail.set_content(person.said(f"Please find my referral attached {uuid.uuid4().hex[:6]}"))
    mail.add_attachment(letter, maintype="application", subtype="pdf",
                        filename=person.said(f"referral-{uuid.uuid4().hex[:6]}.pdf"))
    raw = mail.as_bytes()
    answer = httpx.post(api.url + INBOUND_PATH, content=raw, timeout=15, headers={
        "Content-Type": "message/rfc822", "X-Commhub-Signature": signature_for(EMAIL_SECRET, raw)})
    assert answer.status_code == 200, answer.text
    [result] = answer.json()["results"]
    assert api.ok("GET", f"/api/v1/conversations/{result['conversation_id']}")["contact_id"] == person.contact_id
    person.conversations.add(result["conversation_id"])


def composed_email(clinic: Clinic, person: Person) -> None:
    api = clinic.api
    """An email written to them with an attachment (captured by the sandbox without an SMTP relay)."""
    conversation_id = api.ok("POST", f"{CONTACTS}/{person.contact_id}/conversations",
                             {"channel": "email"})["conversation_id"]
    plan = f"Squats for {person.name}".encode()
    person.attachments.append(plan)
    api.ok("POST", f"/api/v1/conversations/{conversation_id}/email", {
        "body": person.said(f"Your exercise plan {uuid.uuid4().hex[:6]}"),
        "subject": person.said(f"Plan for {person.name}"),
        "attachments": [{"filename": person.said(f"plan-{uuid.uuid4().hex[:6]}.txt"), "content_type": "text/plain",
                         "content_base64": base64.b64encode(plan).decode()}]})


def sandbox_email(clinic: Clinic, person: Person) -> None:
    api = clinic.api
    sent = api.inbound(person.email, person.said(f"Could you email my invoice? {uuid.uuid4().hex[:6]}"),
                       channel="email")
    assert sent["contact_id"] == person.contact_id
    person.conversations.add(sent["conversation_id"])


def replies_notes_and_labels(clinic: Clinic, person: Person) -> None:
    api = clinic.api
    for conversation_id in sorted(person.conversations):
        api.ok("POST", f"/api/v1/conversations/{conversation_id}/reply",
               {"body": person.said(f"We have you down for Thursday {uuid.uuid4().hex[:6]}")})
        api.ok("POST", f"/api/v1/conversations/{conversation_id}/notes",
               {"text": person.said(f"Suspected disc herniation {uuid.uuid4().hex[:6]}")})
        api.ok("POST", f"/api/v1/conversations/{conversation_id}/labels",
               {"add": [person.said(f"spine-{uuid.uuid4().hex[:6]}")]})


def contact_notes_tags_and_consent(clinic: Clinic, person: Person) -> None:
    api = clinic.api
    api.ok("POST", f"{CONTACTS}/{person.contact_id}/notes", {"text": person.said(f"Allergic to latex {uuid.uuid4().hex[:6]}")})
    api.ok("POST", f"{CONTACTS}/{person.contact_id}/tags", {"add": [person.said(f"sciatica-{uuid.uuid4().hex[:6]}")]})
    api.ok("POST", f"{CONTACTS}/{person.contact_id}/consents", {
        "channel": "sms", "purpose": "marketing", "granted": True, "source": person.said(f"front desk {uuid.uuid4().hex[:6]}"),
        "wording": person.said(f"Offers by text for {person.name}")})


def appointments(clinic: Clinic, person: Person) -> None:
    api = clinic.api
    api.ok("POST", "/api/v1/appointments", {
        "contact_id": person.contact_id, "service": person.said(f"Spinal assessment {uuid.uuid4().hex[:6]}"),
        "notes": person.said(f"Bring the MRI {uuid.uuid4().hex[:6]}"), "time_zone": "Europe/London",
        "starts_at": "2031-01-02T09:00:00+00:00", "ends_at": "2031-01-02T09:30:00+00:00"})


def web_chat(clinic: Clinic, person: Person) -> None:
    """The web chat widget's offline form: they leave their email and a message from the clinic's site;
    the visitor contact it creates is merged into theirs."""
    body = person.said(f"Is the hydrotherapy pool open on Sundays? {uuid.uuid4().hex[:6]}")

    async def leave_a_message() -> str:
        visitor = Visitor(clinic.server, clinic.widget_key, origin=WIDGET_ORIGIN)
        await visitor.open()
        await visitor.send({"type": "offline", "client_id": uuid.uuid4().hex, "email": person.email, "body": body,
                            "consent": True})
        ack = await visitor.until(lambda f: f["type"] in ("ack", "error"))
        await visitor.close()
        assert ack["type"] == "ack", ack
        return ack["message_id"]

    message_id = asyncio.run(leave_a_message())
    def conversation() -> dict | None:
        for c in clinic.api.ok("GET", "/api/v1/conversations?view=all&limit=200")["items"]:
            if c["channel"] == "webchat" and any(m["message_id"] == message_id for m in clinic.api.messages(c["conversation_id"])):
                return c
        return None
    found = wait_for(conversation, what="the web chat message in the inbox")
    # an unverified email never attaches a visitor to an existing contact: staff merge them once they are sure
    assert found["contact_id"] != person.contact_id
    clinic.api.ok("POST", f"{CONTACTS}/{person.contact_id}/merge", {"duplicate_id": found["contact_id"]})
    person.conversations.add(found["conversation_id"])


CALENDAR_SERVERS: list[Radicale] = []


@pytest.fixture(autouse=True)
def stop_calendar_servers():
    yield
    while CALENDAR_SERVERS:
        CALENDAR_SERVERS.pop().stop()


def staff_calendar(clinic: Clinic, person: Person) -> None:
    """An appointment pushed to the owner's own calendar (CalDAV, Radicale keeping its files in the
    server's data directory), with the contact's name in the title: the workspace chose to include it."""
    if clinic.calendar is None:
        radicale = Radicale(clinic.server.data_dir / "radicale").start()
        CALENDAR_SERVERS.append(radicale)
        user, password = radicale.new_user()
        collection = radicale.make_calendar(user)
        clinic.api.ok("PUT", f"/api/v1/caldav/connections/{clinic.api.me['staff_id']}",
                      {"collection_url": collection, "username": user, "password": password})
        clinic.api.ok("PUT", "/api/v1/caldav/settings", {"include_contact_name": True})
        clinic.calendar = (radicale, user, collection)
    clinic.api.ok("POST", "/api/v1/appointments", {
        "contact_id": person.contact_id, "service": person.said(f"Hydrotherapy {uuid.uuid4().hex[:6]}"),
        "starts_at": "2031-01-03T09:00:00+00:00", "ends_at": "2031-01-03T09:30:00+00:00",
        "staff_id": clinic.api.me["staff_id"]})
    radicale = clinic.calendar[0]
    wait_for(lambda: person.name in radicale.stored_text(), timeout=20, what="the appointment in the staff calendar")


def calendar_forgot(clinic: Clinic, person: Person) -> bool:
    return clinic.calendar is None or person.name not in clinic.calendar[0].stored_text()


def meta_social(clinic: Clinic, person: Person) -> None:
    """WhatsApp from their phone (lands on their contact), and Messenger with a photo from a PSID of
    their own (a new contact, which an agent links to theirs): both through signed Meta webhooks."""
    assert clinic.meta is not None
    api = clinic.api
    for platform in ("whatsapp", "messenger"):
        if platform not in clinic.meta_accounts:
            account_id, token = clinic.meta.account(platform)
            api.ok("POST", "/api/v1/settings/meta/accounts",
                   {"platform": platform, "account_id": account_id, "access_token": token})
            clinic.meta_accounts[platform] = account_id
    text = person.said(f"On WhatsApp: my knee again {uuid.uuid4().hex[:6]}")
    answer = clinic.meta.deliver(api.url, wa_message(clinic.meta_accounts["whatsapp"], person.phone[1:], text,
                                                     name=person.name))
    assert answer.status_code == 200, answer.text
    psid = person.said(str(uuid.uuid4().int)[:17])
    photo = person.said(f"https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id={uuid.uuid4().hex[:10]}")
    dm_text = person.said(f"On Messenger: photo of the swelling {uuid.uuid4().hex[:6]}")
    answer = clinic.meta.deliver(api.url, dm("messenger", clinic.meta_accounts["messenger"], psid, dm_text,
                                             images=[photo]))
    assert answer.status_code == 200, answer.text

    def social(text: str) -> dict | None:
        rows = api.ok("GET", "/api/v1/conversations?view=all&channel=social&limit=200")["items"]
        return next((c for c in rows if c["preview"] == text), None)

    on_whatsapp = wait_for(lambda: social(text), what="the WhatsApp message in the inbox")
    on_messenger = wait_for(lambda: social(dm_text), what="the Messenger message in the inbox")
    assert on_whatsapp["contact_id"] == person.contact_id
    api.ok("POST", f"{CONTACTS}/{person.contact_id}/link-suggestions/confirm",
           {"contact_id": on_messenger["contact_id"]})
    person.conversations.update({on_whatsapp["conversation_id"], on_messenger["conversation_id"]})


CHANNELS: list[Callable[[Clinic, Person], None]] = [
    sandbox_sms, twilio_sms, sandbox_email, email_webhook, composed_email, web_chat, meta_social,
    replies_notes_and_labels, contact_notes_tags_and_consent, appointments, staff_calendar,
]


def talk_to(clinic: Clinic, person: Person) -> None:
    created = clinic.api.ok("POST", CONTACTS, {"name": person.name, "phone": person.phone, "email": person.email})
    person.contact_id = created["contact_id"]
    person.secrets += [person.name, person.phone, person.email]
    for channel in CHANNELS:
        channel(clinic, person)


def found_in(haystack: str, needles: list[str]) -> set[str]:
    """Which needles occur in haystack (case-insensitive), in one pass with ``grep -F``: a dump of a
    shared test server can be hundreds of megabytes, too big to search once per needle."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as patterns:
        patterns.write("\n".join(needles))
        patterns.flush()
        result = subprocess.run(["grep", "-F", "-o", "-i", "-a", "-f", patterns.name], input=haystack.encode(),
                                capture_output=True, timeout=300)
    assert result.returncode in (0, 1), result.stderr
    matches = {line.lower() for line in result.stdout.decode(errors="replace").splitlines()}
    return {n for n in needles if n.lower() in matches}


def files_in(directory: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in directory.rglob("*") if path.is_file()}


@pytest.fixture
def twilio():
    fake = FakeTwilio(hang_seconds=3).start()
    yield fake
    fake.stop()


@pytest.fixture
def meta():
    fake = FakeMeta().start()
    yield fake
    fake.stop()


@pytest.fixture
def server(tmp_path, fresh_database, session_kek, twilio, meta):
    env = {"DATABASE_URL": fresh_database.url, "COMMHUB_DB_SCHEMA": fresh_database.schema,
           "COMMHUB_KEK": session_kek, "COMMHUB_LOG_LEVEL": "debug", "COMMHUB_EMAIL_INBOUND_SECRET": EMAIL_SECRET,
           **twilio.env(), **meta.env(), "COMMHUB_PUBLIC_URL": PUBLIC,
           "COMMHUB_CALDAV_ALLOW_PRIVATE": "on"}  # the calendar server (Radicale) listens on loopback
    running = start_server(tmp_path, env, "--demo")
    twilio.proxy = (PUBLIC, running.url)  # Twilio calls the public address; the proxy forwards to the server
    meta.webhook_url = running.url  # the fake reports each accepted send as delivered
    yield running
    if running.process.poll() is None:
        stop_server(running)


@pytest.fixture
def owner(server):
    with demo_login(server) as api:
        yield api


def test_an_erased_person_is_in_no_dump_log_or_file_and_everyone_else_is_intact(server, owner, twilio, fresh_database,
                                                                                 tmp_path, meta):
    owner.ok("POST", "/api/v1/email/inbound-addresses", {"address": INBOUND_ADDRESS})
    widget = owner.ok("PUT", "/api/v1/widget", {"allowed_origins": [WIDGET_ORIGIN],
                                                "privacy_policy_url": "https://clinic.example/privacy"})
    clinic = Clinic(owner, twilio, phone_number(), server, widget["public_key"], meta)
    owner.ok("POST", "/api/v1/sms/numbers", {"number": clinic.sms_number})
    compliance_password = "a long compliance password"
    officer = owner.ok("POST", "/api/v1/staff", {"name": "Cora Compliance", "email": f"{unique('cora')}@clinic.example",
                                                 "role": "compliance", "password": compliance_password})
    owner.ok("POST", "/api/v1/webhooks", {"url": "https://hooks.clinic.invalid/in", "event_types": [  # queues rows
        "message.received", "message.sent", "contact.created", "appointment.booked", "appointment.rescheduled",
        "appointment.cancelled", "consent.changed", "subject.erased"]})
    erased, kept = Person.new("Erin"), Person.new("Kiran")
    for person in (erased, kept):
        talk_to(clinic, person)
        owner.ok("GET", f"{CONTACTS}/{person.contact_id}")
    wait_for(lambda: all(m["status"] in ("captured", "delivered") for c in erased.conversations
                         for m in owner.messages(c) if m["kind"] == "out"),
             what="the replies to be delivered (Twilio) or captured (sandbox email)")
    assert any(r.form.get("To") == erased.phone for r in twilio.messages()), "the SMS reply went out through Twilio"
    assert any(s.body.get("to") == erased.phone[1:] for s in meta.accepted()), "the WhatsApp reply went out"
    events_before = count_events(fresh_database)
    with fresh_database.connect() as conn:
        last_before = conn.execute("SELECT max(notification_id) FROM commhub_events").fetchone()[0]

    with login(server.url, demo_credentials(server)["workspace_slug"], officer["email"], compliance_password) as cora:
        answer = cora.post("/api/v1/privacy/erasures", {"contact_id": erased.contact_id,
                                                        "reason": "data_subject_request", "reference": "DSR-0042"})
        assert answer.status_code == 201, answer.text
        erasure = answer.json()
        assert erasure["status"] == "completed"
        wait_for(lambda: calendar_forgot(clinic, erased), timeout=20, what="the staff calendar to drop their events")
        certificate = cora.ok("GET", f"/api/v1/privacy/erasures/{erasure['erasure_id']}/certificate")
    document = certificate["certificate"]
    assert (document["subject_id"], document["requested_by"]) == (erased.contact_id, officer["staff_id"])
    assert document["files_deleted"] == len(erased.attachments) and document["events_unreadable"] > 10

    certificate_file = tmp_path.parent / f"certificate-{uuid.uuid4().hex[:6]}.json"
    certificate_file.write_text(json.dumps(certificate))
    verified = subprocess.run([sys.executable, "-m", "api.cli", "privacy", "verify", str(certificate_file)],
                              cwd=ROOT, env={**os.environ, **server.env, "COMMHUB_DATA_DIR": str(tmp_path)},
                              capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0 and "VALID" in verified.stdout, verified.stdout + verified.stderr

    with fresh_database.connect() as conn:
        untouched = conn.execute("SELECT count(*) FROM commhub_events WHERE notification_id <= %s",
                                 (last_before,)).fetchone()[0]
    assert untouched == events_before  # nothing stored was deleted or rewritten
    for conversation_id in kept.conversations:
        bodies = " ".join(m["body"] or "" for m in owner.messages(conversation_id))
        assert any(secret in bodies for secret in kept.secrets)
    profile = owner.ok("GET", f"{CONTACTS}/{kept.contact_id}")
    assert (profile["name"], profile["phone"], profile["email"]) == (kept.name, kept.phone, kept.email)
    gone = owner.ok("GET", f"{CONTACTS}/{erased.contact_id}")
    assert gone["erased"] and gone["name"] is None

    dump = pg_dump(fresh_database)
    stop_server(server)
    log = server.log()
    data_dir = files_in(tmp_path)
    needles = [*erased.secrets, *(s.encode().hex() for s in erased.secrets),
               *(a.decode() for a in erased.attachments), *(a.hex() for a in erased.attachments)]
    found = found_in(dump, [*needles, kept.name, kept.attachments[0].decode()])
    assert kept.name in found  # the search finds what is there (the survivor's directory row)
    assert kept.attachments[0].decode() not in found  # files are sealed at rest for everyone
    assert not found & set(needles), f"the database dump holds {sorted(found & set(needles))}"
    for secret in erased.secrets:
        assert secret.lower() not in log.lower(), f"the server log holds {secret!r}"
        for path, content in data_dir.items():
            assert secret.encode().lower() not in content.lower(), f"{path} holds {secret!r}"
    for scan in erased.attachments:
        assert all(scan not in content for content in data_dir.values()), "a data file holds the attachment"


def test_the_certificate_cli_says_invalid_for_an_altered_certificate(tmp_path):
    public_key = base64.b64encode(b"\x01" * 32).decode()
    forged = {"certificate": {"erasure_id": "x"}, "algorithm": "Ed25519", "public_key": public_key,
              "key_id": "x", "signature": base64.b64encode(b"\x00" * 64).decode()}
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(forged))
    result = subprocess.run([sys.executable, "-m", "api.cli", "privacy", "verify", str(path), "--public-key",
                             public_key], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "INVALID" in result.stdout
