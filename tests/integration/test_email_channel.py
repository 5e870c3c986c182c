"""The email channel against PostgreSQL and a real SMTP relay on loopback (aiosmtpd): outbound
through the outbox, inbound MIME samples, threading, sealed attachments, bounces, the listener."""

from __future__ import annotations

import asyncio
import uuid
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest

from adapters.channels import OutboundMessage
from adapters.email_inbound import InboundEmail
from adapters.outbox_worker import OutboxWorker
from adapters.smtp_email import SmtpEmailSender, SmtpRelay
from adapters.smtp_listener import SmtpListener
from domain.errors import EmailNotRoutedError, EmailUnreadableError, SubjectErasedError
from tests.integration.helpers import NOW, appearances, new_workspace, pg_dump
from tests.smtp_relay import Relay, free_port

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "email"
FROM = "clinic@harbour.example"


def sample(name: str, **placeholders: str) -> bytes:
    raw = (SAMPLES / name).read_bytes()
    for key, value in placeholders.items():
        raw = raw.replace(b"{{" + key.encode() + b"}}", value.encode())
    return raw


@pytest.fixture
def relay(tmp_path: Path):
    with Relay(tmp_path) as running:
        yield running


@pytest.fixture
def workspace(hub):
    workspace_id = new_workspace(hub.app)
    hub.app.attach_inbound_address(workspace_id, f"help-{workspace_id.hex[:8]}@harbour.example", NOW)
    return workspace_id


def to(workspace_id: uuid.UUID, raw: bytes) -> bytes:
    return raw.replace(b"help@harbour.example", f"help-{workspace_id.hex[:8]}@harbour.example".encode())


def inbound(hub) -> InboundEmail:
    return hub.extras["email"].inbound


def sender_for(hub, relay: Relay, **changes: object) -> SmtpEmailSender:
    settings = dict(host="127.0.0.1", port=relay.port, security=relay.security, from_address=FROM,
                    ca_file=str(relay.ca_file) if relay.ca_file else None, timeout=5.0)
    settings.update(changes)
    email = hub.extras["email"]
    return SmtpEmailSender(SmtpRelay(**settings), hub.app, hub.database, email.files, email.links)  # type: ignore[arg-type]


def worker(hub, sender: SmtpEmailSender) -> OutboxWorker:
    return OutboxWorker(hub.app, hub.database, {"email": sender}, clock=lambda: NOW)


def deliveries(hub, conversation_id: uuid.UUID) -> list[tuple[str, str | None]]:
    return [(e.status, e.error_code) for e in hub.app.events.get(conversation_id)
            if type(e).__name__ == "MessageDeliveryUpdated"]


def test_a_reply_to_an_inbound_email_reaches_the_relay_threaded_with_text_and_html(hub, relay, workspace):
    [stored] = inbound(hub).handle(to(workspace, sample("multipart_alternative.eml")))
    message_id, decision = hub.app.reply(workspace, stored.conversation_id, body="Friday 9:00 is <yours>.",
                                         author_id=None, now=NOW)
    hub.projections.catch_up()

    worker(hub, sender_for(hub, relay)).run_once()

    [received] = relay.received
    email = received.message
    assert received.rcpt_tos == ["maria.lopez@example.net"] and received.mail_from == FROM
    assert email["Message-ID"] == f"<{message_id}@harbour.example>"
    assert email["Subject"] == "Re: Appointment on Thursday"
    assert email["In-Reply-To"] == "<CAF1x9q-first-mail@mail.example.net>"
    assert email["References"] == "<CAF1x9q-first-mail@mail.example.net>"
    assert email["From"].addresses[0].addr_spec == FROM and email["From"].addresses[0].display_name == "Harbour Physio"
    assert email.get_body(("plain",)).get_content().strip() == "Friday 9:00 is <yours>."
    assert "Friday 9:00 is &lt;yours&gt;." in email.get_body(("html",)).get_content()
    assert email["List-Unsubscribe"] is None  # transactional mail
    assert deliveries(hub, stored.conversation_id) == [("sent", None)]


def test_the_customers_reply_threads_into_the_same_conversation_and_its_preview_leaves_the_quote_out(hub, relay, workspace):
    [first] = inbound(hub).handle(to(workspace, sample("multipart_alternative.eml")))
    ours, _ = hub.app.reply(workspace, first.conversation_id, body="We can offer Friday at 9.", author_id=None, now=NOW)
    hub.projections.catch_up()
    worker(hub, sender_for(hub, relay)).run_once()
    our_header = relay.received[0].message["Message-ID"]

    [second] = inbound(hub).handle(to(workspace, sample(
        "reply.eml", SUBJECT="Appointment on Thursday", IN_REPLY_TO=our_header,
        REFERENCES=f"<CAF1x9q-first-mail@mail.example.net> {our_header}")))
    hub.projections.catch_up()

    assert second.outcome == "stored" and second.conversation_id == first.conversation_id
    with hub.database.connection() as conn:
        preview = conn.execute("SELECT preview FROM commhub_inbox WHERE conversation_id = %s",
                               (first.conversation_id,)).fetchone()[0]
        refs = conn.execute("SELECT refs FROM commhub_email_messages WHERE message_id = %s",
                            (second.message_id,)).fetchone()[0]
    assert preview == "Friday at 9 works for me, thank you!"
    assert refs == ["<CAF1x9q-first-mail@mail.example.net>", our_header]


def test_a_redelivered_email_is_stored_once(hub, workspace):
    raw = to(workspace, sample("attachments.eml"))
    [first] = inbound(hub).handle(raw)
    [again] = inbound(hub).handle(raw)
    hub.projections.catch_up()
    assert (first.outcome, again.outcome) == ("stored", "duplicate")
    assert again.message_id == first.message_id
    with hub.database.connection() as conn:
        assert conn.execute("SELECT count(*) FROM commhub_messages WHERE conversation_id = %s",
                            (first.conversation_id,)).fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM commhub_sealed_files WHERE workspace_id = %s",
                            (workspace,)).fetchone()[0] == 2


def test_attachments_are_sealed_readable_by_the_workspace_and_gone_with_the_contact(hub, workspace):
    token = uuid.uuid4().hex[:10]
    raw = to(workspace, sample("attachments.eml")).replace(b"referral.pdf", f"referral-{token}.pdf".encode())
    [stored] = inbound(hub).handle(raw.replace(b"Referral letter", f"Referral letter {token}".encode()))
    hub.projections.catch_up()
    files = hub.extras["email"].files
    with hub.database.connection() as conn:
        attachments = conn.execute("SELECT attachments FROM commhub_messages WHERE message_id = %s",
                                   (stored.message_id,)).fetchone()[0]
    assert [a["filename"] for a in attachments] == [f"referral-{token}.pdf", "knee.png"]
    pdf_id = uuid.UUID(attachments[0]["attachment_id"])
    content_type, data = files.get(pdf_id, workspace)
    assert content_type == "application/pdf" and data.startswith(b"%PDF-1.4\n% referral letter for knee scan 8841")
    assert appearances(pg_dump(hub.database), "referral letter for knee scan 8841") == []  # sealed on disk

    conversation = hub.app.get_conversation(workspace, stored.conversation_id)
    hub.app.erase_contact(workspace, conversation.contact_id, request_id=uuid.uuid4(), actor_id=None, now=NOW)
    with pytest.raises(SubjectErasedError):
        files.get(pdf_id, workspace)
    hub.projections.catch_up()
    with hub.database.connection() as conn:
        assert conn.execute("SELECT count(*) FROM commhub_sealed_files WHERE subject_id = %s",
                            (conversation.contact_id,)).fetchone()[0] == 0
        assert conn.execute("SELECT subject FROM commhub_email_messages WHERE message_id = %s",
                            (stored.message_id,)).fetchone()[0] is None
    dump = pg_dump(hub.database)
    assert appearances(dump, f"referral-{token}.pdf") == [] and appearances(dump, f"Referral letter {token}") == []


@pytest.mark.parametrize("name, text", [
    ("html_only.eml", "Dear team,\n\nIs invoice #4471 & the receipt ready?\n\nThanks — Tom"),
    ("latin1.eml", "Bonjour, je dois annuler mon rendez-vous de mercredi. Très désolée.\nRenée"),
    ("unknown_charset.eml", "Can you call me back? \ufffd\ufffd\ufffd"),
])
def test_html_only_and_non_utf8_mail_is_stored_as_readable_text(hub, workspace, name, text):
    [stored] = inbound(hub).handle(to(workspace, sample(name)))
    hub.projections.catch_up()
    with hub.database.connection() as conn:
        body = conn.execute("SELECT body FROM commhub_messages WHERE message_id = %s", (stored.message_id,)).fetchone()[0]
    assert body == text


def test_an_auto_reply_is_stored_and_flagged_so_nothing_answers_it(hub, workspace):
    [stored] = inbound(hub).handle(to(workspace, sample("auto_reply.eml")))
    hub.projections.catch_up()
    with hub.database.connection() as conn:
        row = conn.execute("SELECT auto_reply, subject FROM commhub_email_messages WHERE message_id = %s",
                           (stored.message_id,)).fetchone()
        queued = conn.execute("SELECT count(*) FROM commhub_outbox WHERE conversation_id = %s",
                              (stored.conversation_id,)).fetchone()[0]
    assert row == (True, "Out of office: Appointment on Thursday") and queued == 0


def test_a_bounce_marks_the_original_message_failed_instead_of_becoming_a_message(hub, relay, workspace):
    [first] = inbound(hub).handle(to(workspace, sample("multipart_alternative.eml")))
    ours, _ = hub.app.reply(workspace, first.conversation_id, body="See you Friday", author_id=None, now=NOW)
    hub.projections.catch_up()
    worker(hub, sender_for(hub, relay)).run_once()

    [outcome] = inbound(hub).handle(sample("bounce.eml", ORIGINAL_MESSAGE_ID=relay.received[0].message["Message-ID"]))
    hub.projections.catch_up()

    assert (outcome.outcome, outcome.message_id) == ("bounce", ours)
    assert deliveries(hub, first.conversation_id) == [("sent", None), ("failed", "bounced_5.1.1")]
    with hub.database.connection() as conn:
        kinds = conn.execute("SELECT kind, status FROM commhub_messages WHERE conversation_id = %s ORDER BY position",
                             (first.conversation_id,)).fetchall()
    assert kinds == [("in", "received"), ("out", "failed")]


def test_mail_for_an_unknown_address_or_without_a_sender_is_refused(hub, workspace):
    with pytest.raises(EmailNotRoutedError):
        inbound(hub).handle(sample("multipart_alternative.eml").replace(b"help@harbour.example", b"nobody@else.example"))
    with pytest.raises(EmailUnreadableError):
        inbound(hub).handle(sample("malformed.eml"))


def test_relay_answers_decide_between_retrying_and_failing_for_good(hub, relay, workspace):
    [first] = inbound(hub).handle(to(workspace, sample("multipart_alternative.eml")))
    sender = sender_for(hub, relay)
    message = OutboundMessage(uuid.uuid4(), workspace, first.conversation_id,
                              hub.app.get_conversation(workspace, first.conversation_id).contact_id, "email", "Hi", 1)
    relay.answer_with("451 4.3.0 Mailbox busy, try later")
    assert (sender.send(message).retry, sender.send(message).error_code) == (True, "smtp_451")
    relay.answer_with("554 5.7.1 Rejected")
    assert (sender.send(message).retry, sender.send(message).error_code) == (False, "smtp_554")
    unreachable = sender_for(hub, relay, port=free_port()).send(message)
    assert (unreachable.retry, unreachable.error_code) == (True, "smtp_unreachable")
    relay.answer_with(None)
    assert sender.send(message).status == "sent"


def test_a_permanent_refusal_is_recorded_as_a_visible_failure(hub, relay, workspace):
    [first] = inbound(hub).handle(to(workspace, sample("multipart_alternative.eml")))
    hub.app.reply(workspace, first.conversation_id, body="Hello", author_id=None, now=NOW)
    hub.projections.catch_up()
    relay.answer_with("550 5.1.1 No such user")
    worker(hub, sender_for(hub, relay)).run_once()
    assert deliveries(hub, first.conversation_id) == [("failed", "smtp_550")]


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_mail_goes_through_a_relay_that_wants_tls_and_a_login(hub, workspace, tmp_path, security):
    [first] = inbound(hub).handle(to(workspace, sample("multipart_alternative.eml")))
    contact_id = hub.app.get_conversation(workspace, first.conversation_id).contact_id
    message = OutboundMessage(uuid.uuid4(), workspace, first.conversation_id, contact_id, "email", "Hi", 1)
    with Relay(tmp_path, security=security, username="hub", password="s3cret-relay") as secure:
        assert sender_for(hub, secure, username="hub", password="s3cret-relay").send(message).status == "sent"
        refused = sender_for(hub, secure, username="hub", password="wrong").send(message)
        assert len(secure.received) == 1
    assert (refused.status, refused.retry, refused.error_code) == ("failed", False, "smtp_535")


def test_a_composed_marketing_email_carries_its_subject_attachment_and_a_working_unsubscribe_link(hub, relay, workspace):
    [first] = inbound(hub).handle(to(workspace, sample("multipart_alternative.eml")))
    contact_id = hub.app.get_conversation(workspace, first.conversation_id).contact_id
    hub.app.grant_consent(workspace, contact_id, channel="email", purpose="marketing", source="form",
                          wording="Send me offers", actor_id=None, now=NOW)
    file_id = uuid.uuid4()
    hub.extras["email"].files.put(file_id, workspace, contact_id, "application/pdf", b"%PDF-1.4 winter offer")
    hub.app.compose_email(workspace, first.conversation_id, body="20% off in December", subject="Winter offer",
                          attachments=[{"attachment_id": str(file_id), "filename": "offer.pdf",
                                        "content_type": "application/pdf", "size": 21}],
                          author_id=None, purpose="marketing", now=NOW)
    hub.projections.catch_up()
    worker(hub, sender_for(hub, relay)).run_once()

    email = relay.received[0].message
    assert email["Subject"] == "Winter offer"
    [attachment] = list(email.iter_attachments())
    assert attachment.get_filename() == "offer.pdf" and attachment.get_content() == b"%PDF-1.4 winter offer"
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = str(email["List-Unsubscribe"]).strip("<>")
    token = url.rsplit("/", 1)[1]
    assert "maria" not in url.lower() and "example.net" not in url
    assert hub.extras["email"].links.verify(token) == (workspace, contact_id, "marketing")
    assert hub.extras["email"].links.verify(token[:-2] + ("AA" if not token.endswith("AA") else "BB")) is None


def test_the_smtp_listener_stores_mail_for_attached_addresses_and_refuses_others(hub, workspace):
    port = free_port()
    listener = SmtpListener(inbound(hub), "127.0.0.1", port, 20_000).start()
    try:
        raw = to(workspace, sample("latin1.eml"))
        address = f"help-{workspace.hex[:8]}@harbour.example"
        asyncio.run(aiosmtplib.send(raw, sender="renee.dubois@example.fr", recipients=[address],
                                    hostname="127.0.0.1", port=port, start_tls=False))
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
            asyncio.run(aiosmtplib.send(raw, sender="renee.dubois@example.fr", recipients=["nobody@else.example"],
                                        hostname="127.0.0.1", port=port, start_tls=False))
        junk = EmailMessage()
        junk.set_content("no sender here")
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            asyncio.run(aiosmtplib.send(junk, sender="x@y.example", recipients=[address], hostname="127.0.0.1",
                                        port=port, start_tls=False))
        assert refused.value.code == 550
        huge = to(workspace, sample("latin1.eml")) + b"x" * 30_000
        with pytest.raises(aiosmtplib.SMTPResponseException) as too_big:
            asyncio.run(aiosmtplib.send(huge, sender="renee.dubois@example.fr", recipients=[address],
                                        hostname="127.0.0.1", port=port, start_tls=False))
        assert too_big.value.code == 552
    finally:
        listener.stop()
    hub.projections.catch_up()
    with hub.database.connection() as conn:
        bodies = conn.execute("SELECT m.body FROM commhub_messages m WHERE m.workspace_id = %s", (workspace,)).fetchall()
    assert bodies == [("Bonjour, je dois annuler mon rendez-vous de mercredi. Très désolée.\nRenée",)]
