"""The Twilio channel with the outbox, against the fake Twilio on loopback: STOP cancels what is
still queued and only the confirmation goes; erasure leaves no SMS or voicemail text in the database."""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import replace

import pytest

from adapters.embedded_postgres import pg_bin
from adapters.outbox_worker import OutboxWorker
from adapters.postgres import Database
from api.bootstrap import bootstrap, channel_senders
from api.settings import Settings
from tests.fake_twilio import FakeTwilio
from tests.integration.helpers import NOW, appearances, new_workspace

TWILIO_NUMBER = "+15005550006"


@pytest.fixture
def fake():
    twilio = FakeTwilio(callbacks=()).start()
    yield twilio
    twilio.stop()


def twilio_settings(settings: Settings, fake: FakeTwilio) -> Settings:
    return replace(settings, twilio_account_sid=fake.account_sid, twilio_auth_token=fake.auth_token,
                   twilio_api_url=fake.url, twilio_timeout=2.0, public_url="https://hub.example.test")


def schema_dump(database: Database) -> str:
    """A plain-text dump of this test's schema (other schemas may come and go meanwhile)."""
    return subprocess.run([str(pg_bin("pg_dump")), "--no-owner", "--schema", database.schema, "--dbname", database.url],
                          check=True, capture_output=True, text=True, timeout=120).stdout


def worker(hub, settings: Settings) -> OutboxWorker:
    return OutboxWorker(hub.app, hub.database, channel_senders(settings, hub.app), clock=lambda: NOW)


def test_stop_cancels_a_queued_reply_and_only_the_confirmation_reaches_twilio_even_after_a_rebuild(
        hub, settings, fake):
    settings = twilio_settings(settings, fake)
    app = hub.app
    workspace_id = new_workspace(app)
    app.attach_number(workspace_id, TWILIO_NUMBER, NOW)
    person = app.find_or_create_contact(workspace_id, kind="phone", value="+447700900555", name=None, now=NOW)
    first = app.receive_sms(workspace_id=workspace_id, contact_id=person, body="Hello", provider_message_id="SMa1",
                            attachments=[], now=NOW, to_number=TWILIO_NUMBER)
    app.reply(workspace_id, first.conversation_id, body="Offer: 20% off", author_id=None, now=NOW)
    hub.projections.catch_up()

    app.receive_sms(workspace_id=workspace_id, contact_id=person, body="stop", provider_message_id="SMa2",
                    attachments=[], now=NOW, to_number=TWILIO_NUMBER)
    hub.projections.catch_up()
    worker(hub, settings).run_once()
    worker(hub, settings).run_once()

    [confirmation] = [r.form for r in fake.messages() if r.form["To"] == "+447700900555"]
    assert confirmation["From"] == TWILIO_NUMBER and "unsubscribed" in confirmation["Body"]
    with hub.database.connect() as conn:
        statuses = conn.execute("SELECT status, last_error FROM commhub_outbox WHERE contact_id = %s",
                                (person,)).fetchall()
    assert sorted(statuses) == [("cancelled", "consent_withdrawn"), ("sent", None)]

    hub.projections.rebuild("outbox")  # the outcome is an event: a rebuilt outbox sends nothing again
    worker(hub, settings).run_once()
    assert [r.form["To"] for r in fake.messages()].count("+447700900555") == 1


def test_after_erasure_no_sms_media_or_voicemail_of_the_contact_is_left_in_the_database(
        fresh_database, session_kek, tmp_path):
    settings = Settings(database_url=fresh_database.url, db_schema=fresh_database.schema, data_dir=tmp_path,
                        kek=session_kek)
    token = uuid.uuid4().hex[:8]
    phone, words = "+447700900777", f"my knee still hurts {token}"
    media = f"https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM{token}/Media/ME1"
    recording = f"https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE{token}"
    transcription = f"please call me back about the scan {token}"
    with bootstrap(settings, database=fresh_database) as hub:
        app = hub.app
        workspace_id = new_workspace(app)
        app.attach_number(workspace_id, TWILIO_NUMBER, NOW)
        person = app.find_or_create_contact(workspace_id, kind="phone", value=phone, name=None, now=NOW)
        app.receive_sms(workspace_id=workspace_id, contact_id=person, body=words, provider_message_id="SMb1",
                        attachments=[{"url": media, "content_type": "image/jpeg"}], now=NOW, to_number=TWILIO_NUMBER)
        app.log_call(workspace_id, person, call_sid="CAb1", kind="voicemail", now=NOW,
                     attachments=[{"url": recording, "content_type": "audio/wav"}])
        app.log_call(workspace_id, person, call_sid="CAb1", kind="transcription", now=NOW, body=transcription)
        hub.projections.catch_up()
        with fresh_database.connect() as conn:
            stored = b"".join(bytes(row[0]) for row in conn.execute("SELECT state FROM commhub_events"))
        for secret in (words, media, recording, transcription):
            assert secret.encode() not in stored, secret  # sealed in the events themselves

        app.erase_contact(workspace_id, person, request_id=uuid.uuid4(), actor_id=None, now=NOW)
        hub.projections.catch_up()
        dump = schema_dump(fresh_database)

    for secret in (phone, words, media, recording, transcription):
        assert appearances(dump, secret) == [], secret
    assert appearances(dump, TWILIO_NUMBER)  # the business's own number stays: it is nobody's personal data
