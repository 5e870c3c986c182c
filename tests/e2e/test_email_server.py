"""Email end to end: a real ``commhub serve`` process sending through an aiosmtpd relay on loopback,
receiving signed raw MIME on its webhook and mail on its own SMTP listener, and honouring the
one-click unsubscribe link from a sent email."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiosmtplib
import httpx
import pytest

from adapters.postgres import Database
from api.routes.email import signature_for
from tests.e2e.api_support import Api, assert_problem, demo_login, wait_for
from tests.e2e.conftest import Server, start_server, stop_server
from tests.smtp_relay import Received, Relay, free_port

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "email"
SECRET = "inbound-secret-for-tests-7c1f"
WEBHOOK = "/webhooks/email/inbound"


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    with Relay(tmp_path_factory.mktemp("relay"), security="starttls", username="hub", password="relay-pass") as running:
        yield running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, server_url: str, session_kek: str, relay: Relay) -> Iterator[Server]:
    database = Database(server_url, f"test_{uuid.uuid4().hex[:12]}")
    database.ensure_schema()
    env = {"DATABASE_URL": database.url, "COMMHUB_DB_SCHEMA": database.schema, "COMMHUB_KEK": session_kek,
           **relay.env(), "COMMHUB_SMTP_USERNAME": "hub", "COMMHUB_SMTP_PASSWORD": "relay-pass",
           "COMMHUB_EMAIL_INBOUND_SECRET": SECRET, "COMMHUB_EMAIL_MAX_BYTES": "200000",
           "COMMHUB_SMTP_LISTENER": "on", "COMMHUB_SMTP_LISTENER_PORT": str(free_port())}
    running = start_server(tmp_path_factory.mktemp("email"), env, "--demo")
    try:
        yield running
    finally:
        stop_server(running)
        database.drop_schema()


@pytest.fixture(scope="module")
def owner(server: Server) -> Iterator[Api]:
    with demo_login(server) as api:
        api.ok("POST", "/api/v1/email/inbound-addresses", {"address": "Help@Harbour.example"})
        yield api


def sample(name: str, **placeholders: str) -> bytes:
    raw = (SAMPLES / name).read_bytes()
    for key, value in placeholders.items():
        raw = raw.replace(b"{{" + key.encode() + b"}}", value.encode())
    return raw


def post_mime(server: Server, raw: bytes, signature: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "message/rfc822"}
    if signature is not False:
        headers["X-Commhub-Signature"] = signature or signature_for(SECRET, raw)
    return httpx.post(server.url + WEBHOOK, content=raw, headers=headers, timeout=15)


def personalised(raw: bytes) -> tuple[bytes, str]:
    """A sample from a sender of its own, so tests sharing the server do not share a contact."""
    address = f"maria.{uuid.uuid4().hex[:8]}@example.net"
    return raw.replace(b"maria.lopez@example.net", address.encode()).replace(
        b"CAF1x9q-first-mail", f"first-{uuid.uuid4().hex}".encode()), address


def relayed_to(relay: Relay, address: str) -> Received:
    return wait_for(lambda: next((r for r in relay.received if r.rcpt_tos == [address]), None),
                    what=f"an email to {address} at the relay")


def test_a_signed_inbound_email_lands_in_the_inbox_and_the_reply_reaches_the_relay_threaded(server, owner, relay):
    raw, address = personalised(sample("multipart_alternative.eml"))
    response = post_mime(server, raw)
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    assert result["outcome"] == "stored"
    assert post_mime(server, raw).json()["results"][0] == {**result, "outcome": "duplicate"}
    [message] = owner.messages(result["conversation_id"])
    assert message["body"] == "Hello, could I move my Thursday appointment to Friday morning? — Maria"

    reply = owner.ok("POST", f"/api/v1/conversations/{result['conversation_id']}/reply", {"body": "Friday <9am> is free"})
    sent = relayed_to(relay, address).message
    original = raw.split(b"Message-ID: ")[1].split(b"\r\n")[0].decode()
    assert sent["Message-ID"] == f"<{reply['message_id']}@harbour.example>"
    assert (sent["In-Reply-To"], sent["References"]) == (original, original)
    assert sent["Subject"] == "Re: Appointment on Thursday"
    assert "Friday &lt;9am&gt; is free" in sent.get_body(("html",)).get_content()
    wait_for(lambda: owner.messages(result["conversation_id"])[-1]["status"] == "sent", what="status sent")


@pytest.mark.parametrize("signature", [False, "sha256=" + "0" * 64, "not-a-signature"])
def test_an_unsigned_or_wrongly_signed_webhook_is_refused(server, owner, signature):
    raw, _ = personalised(sample("multipart_alternative.eml"))
    assert_problem(post_mime(server, raw, signature), 403)


def test_malformed_huge_and_unroutable_mail_get_clear_problems_not_500(server, owner):
    assert_problem(post_mime(server, sample("malformed.eml")), 422)
    assert_problem(post_mime(server, b"From: a@b.example\r\n\r\n" + b"x" * 300_000), 413)
    unroutable = sample("latin1.eml").replace(b"help@harbour.example", b"nobody@else.example")
    assert assert_problem(post_mime(server, unroutable), 422)["code"] == "EmailNotRoutedError"
    stored = post_mime(server, sample("unknown_charset.eml"))
    assert stored.status_code == 200 and stored.json()["results"][0]["outcome"] in ("stored", "duplicate")


def test_the_one_click_unsubscribe_link_of_a_marketing_email_withdraws_consent_without_login(server, owner, relay):
    raw, address = personalised(sample("multipart_alternative.eml"))
    result = post_mime(server, raw).json()["results"][0]
    contact_id = owner.ok("GET", f"/api/v1/conversations/{result['conversation_id']}")["contact_id"]
    owner.ok("POST", f"/api/v1/contacts/{contact_id}/consents", {
        "channel": "email", "purpose": "marketing", "granted": True, "source": "web form", "wording": "Offers by email"})
    owner.ok("POST", f"/api/v1/conversations/{result['conversation_id']}/email",
             {"body": "Winter offer: 20% off", "subject": "Winter offer", "purpose": "marketing"})

    sent = relayed_to(relay, address).message
    assert sent["Subject"] == "Winter offer"
    assert sent["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = str(sent["List-Unsubscribe"]).strip("<>")
    assert url.startswith(server.url + "/unsubscribe/") and address.split("@")[0] not in url

    page = httpx.get(url, timeout=10)
    assert page.status_code == 200 and '<form method="post">' in page.text
    assert owner.ok("GET", f"/api/v1/contacts/{contact_id}/consents")["items"][0]["granted"] is True  # GET changes nothing
    done = httpx.post(url, content=b"List-Unsubscribe=One-Click",
                      headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
    assert done.status_code == 200 and "no longer receive marketing email" in done.text
    [consent] = owner.ok("GET", f"/api/v1/contacts/{contact_id}/consents")["items"]
    assert (consent["channel"], consent["purpose"], consent["granted"]) == ("email", "marketing", False)
    again = owner.ok("POST", f"/api/v1/conversations/{result['conversation_id']}/email",
                     {"body": "Last chance", "purpose": "marketing"})
    assert (again["status"], again["reason"]) == ("refused", "consent_withdrawn")
    assert_problem(httpx.post(url[:-3] + "abc", timeout=10), 404)


def test_mail_sent_to_the_built_in_smtp_listener_arrives_in_the_inbox(server, owner):
    raw, address = personalised(sample("latin1.eml").replace(b"renee.dubois@example.fr", b"maria.lopez@example.net"))
    port = int(server.env["COMMHUB_SMTP_LISTENER_PORT"])
    asyncio.run(aiosmtplib.send(raw, sender=address, recipients=["help@harbour.example"], hostname="127.0.0.1",
                                port=port, start_tls=False))

    def arrived() -> dict | None:
        rows = owner.ok("GET", "/api/v1/conversations?view=all&channel=email")["items"]
        return next((r for r in rows if r["preview"] and "annuler mon rendez-vous" in r["preview"]), None)

    conversation = wait_for(arrived, what="the listener's message in the inbox")
    [message] = owner.messages(conversation["conversation_id"])
    assert message["body"].startswith("Bonjour, je dois annuler mon rendez-vous de mercredi. Très désolée.")


def test_attachments_come_in_through_the_webhook_and_go_out_with_a_composed_email(server, owner, relay):
    raw = sample("attachments.eml").replace(b"attach-3321", f"attach-{uuid.uuid4().hex}".encode())
    address = f"sam.{uuid.uuid4().hex[:8]}@example.org"
    result = post_mime(server, raw.replace(b"sam.okafor@example.org", address.encode())).json()["results"][0]
    email = owner.ok("GET", f"/api/v1/email/messages/{result['message_id']}")
    assert (email["direction"], email["subject"], email["auto_reply"]) == ("in", "Referral letter", False)
    pdf = next(a for a in email["attachments"] if a["filename"] == "referral.pdf")
    download = owner.get(f"/api/v1/email/attachments/{pdf['attachment_id']}")
    assert download.status_code == 200 and download.content.startswith(b"%PDF-1.4\n% referral letter")
    assert download.headers["content-disposition"] == "attachment"

    owner.ok("POST", f"/api/v1/conversations/{result['conversation_id']}/email", {
        "body": "Your exercise plan is attached.", "subject": "Exercise plan",
        "attachments": [{"filename": "plan.txt", "content_type": "text/plain",
                         "content_base64": "U3F1YXRzIDN4MTA="}]})
    sent = relayed_to(relay, address).message
    assert sent["Subject"] == "Exercise plan" and sent["List-Unsubscribe"] is None
    [attachment] = list(sent.iter_attachments())
    assert (attachment.get_filename(), attachment.get_content()) == ("plan.txt", "Squats 3x10")


def test_the_server_log_holds_no_addresses_subjects_or_message_text(server, owner):
    log = server.log()
    for secret in ("example.net", "example.org", "Appointment on Thursday", "Referral letter", "Bonjour", "Winter offer"):
        assert secret not in log, [line for line in log.splitlines() if secret in line][:3]
