"""Email rules and MIME handling without I/O: reply subjects, quoted replies, auto-replies, reading
real MIME samples, and building outbound messages."""

from __future__ import annotations

from datetime import datetime, timezone
from email import message_from_bytes, policy
from pathlib import Path
from uuid import UUID

import aiosmtplib
import pytest

from adapters.email_parse import parse_email, text_from_html
from adapters.smtp_email import OutgoingEmail, build_message, classify, html_of
from domain.email import InboundAddress, is_auto_reply, reply_subject, strip_quoted, thread_ids
from domain.errors import EmailUnreadableError

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "email"
NOW = datetime(2026, 11, 25, 9, 30, tzinfo=timezone.utc)


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_a_reply_subject_gets_one_re_prefix_however_many_the_original_had() -> None:
    assert reply_subject("Appointment", "x") == "Re: Appointment"
    assert reply_subject("RE: Re: AW: Appointment", "x") == "Re: Appointment"
    assert reply_subject(None, "Message from Harbour Physio") == "Message from Harbour Physio"


def test_quoted_lines_and_the_attribution_line_are_stripped_from_a_reply() -> None:
    text = "Friday works.\n\nOn Tue, 24 Nov 2026, Clinic <c@x.example> wrote:\n> We can offer Friday.\n"
    assert strip_quoted(text) == "Friday works."
    assert strip_quoted("> only a quote") == "> only a quote"


@pytest.mark.parametrize("headers, expected", [
    ({"Auto-Submitted": "auto-replied"}, True),
    ({"Auto-Submitted": "no"}, False),
    ({"Precedence": "bulk"}, True),
    ({"X-Autoreply": "yes"}, True),
    ({"Subject": "Out of office"}, False),
])
def test_auto_replies_are_recognised_by_their_headers(headers: dict[str, str], expected: bool) -> None:
    assert is_auto_reply(headers) is expected


def test_inbound_addresses_route_case_insensitively() -> None:
    assert InboundAddress.id_for("Help@Harbour.Example ") == InboundAddress.id_for("help@harbour.example")


def test_thread_ids_keep_order_drop_repeats_and_end_with_the_direct_parent() -> None:
    assert thread_ids("<b@x>", ["<a@x>", "<b@x>"]) == ["<a@x>", "<b@x>"]
    assert thread_ids("<c@x>", ["<a@x>"]) == ["<a@x>", "<c@x>"]


def test_multipart_alternative_mail_is_read_as_its_plain_text() -> None:
    email = parse_email(sample("multipart_alternative.eml"))
    assert email.sender == "maria.lopez@example.net" and email.sender_name == "Maria Lopez"
    assert email.text == "Hello, could I move my Thursday appointment to Friday morning? — Maria"
    assert email.message_id == "<CAF1x9q-first-mail@mail.example.net>"
    assert email.recipients == ["help@harbour.example"] and email.attachments == []


def test_html_only_mail_becomes_text_without_its_scripts_or_styles() -> None:
    email = parse_email(sample("html_only.eml"))
    assert email.text == "Dear team,\n\nIs invoice #4471 & the receipt ready?\n\nThanks — Tom"
    assert text_from_html("<p>a<script>x()</script></p><style>p{}</style>") == "a"


def test_iso_8859_1_mail_and_its_encoded_headers_are_decoded() -> None:
    email = parse_email(sample("latin1.eml"))
    assert email.subject == "Rendez-vous annulé" and email.sender_name == "Renée Dubois"
    assert "Très désolée" in email.text


@pytest.mark.parametrize("name, readable", [("unknown_charset.eml", "Can you call me back?"),
                                            ("wrong_charset.eml", "opening hours please")])
def test_unknown_or_wrong_charsets_still_give_the_readable_text(name: str, readable: str) -> None:
    email = parse_email(sample(name))
    assert email.text.startswith(readable) or readable in email.text
    assert "\ufffd" in email.text  # the undecodable bytes are marked, not dropped silently


def test_attachments_are_read_with_their_names_types_and_bytes() -> None:
    email = parse_email(sample("attachments.eml"))
    assert [(a.filename, a.content_type) for a in email.attachments] == [
        ("referral.pdf", "application/pdf"), ("knee.png", "image/png")]
    assert email.attachments[0].data.startswith(b"%PDF-1.4")
    assert email.text == "Please find my referral letter and the photo attached."


def test_a_delivery_status_notification_is_a_bounce_naming_the_original_message() -> None:
    raw = sample("bounce.eml").replace(b"{{ORIGINAL_MESSAGE_ID}}", b"<0b5e1a52-8f39-4d0c-9a51-2b7f3c1d9e40@harbour.example>")
    bounce = parse_email(raw).bounce
    assert bounce is not None and bounce.failed and bounce.status == "5.1.1"
    assert bounce.original_message_ids == ["<0b5e1a52-8f39-4d0c-9a51-2b7f3c1d9e40@harbour.example>"]


def test_an_out_of_office_reply_is_marked_as_an_auto_reply() -> None:
    assert parse_email(sample("auto_reply.eml")).auto_reply
    assert not parse_email(sample("multipart_alternative.eml")).auto_reply


@pytest.mark.parametrize("raw", [b"", b"   \r\n", (SAMPLES / "malformed.eml").read_bytes(), b"\x00\xff\xfe garbage"])
def test_input_without_a_sender_is_refused_as_unreadable(raw: bytes) -> None:
    with pytest.raises(EmailUnreadableError):
        parse_email(raw)


def outgoing(**changes: object) -> OutgoingEmail:
    values: dict[str, object] = dict(
        message_id=UUID("0b5e1a52-8f39-4d0c-9a51-2b7f3c1d9e40"), from_address="clinic@harbour.example",
        from_name="Harbour Physio", to_address="maria.lopez@example.net", to_name="Maria Lopez",
        subject="Re: Appointment", body="Friday at 9 <b>works</b>?\n\nSee you & bye",
    )
    values.update(changes)
    return OutgoingEmail(**values)  # type: ignore[arg-type]


def test_an_outbound_email_has_a_stable_message_id_and_escaped_html_beside_its_text() -> None:
    first = build_message(outgoing(), "harbour.example", NOW)
    again = build_message(outgoing(), "harbour.example", NOW)
    assert first["Message-ID"] == again["Message-ID"] == "<0b5e1a52-8f39-4d0c-9a51-2b7f3c1d9e40@harbour.example>"
    parsed = message_from_bytes(bytes(first), policy=policy.default)
    text = parsed.get_body(("plain",)).get_content()
    markup = parsed.get_body(("html",)).get_content()
    assert text.replace("\r\n", "\n").strip() == "Friday at 9 <b>works</b>?\n\nSee you & bye"
    assert "&lt;b&gt;works&lt;/b&gt;" in markup and "<b>" not in markup and "&amp; bye" in markup
    assert parsed["List-Unsubscribe"] is None


def test_a_threaded_marketing_email_with_an_attachment_carries_every_header() -> None:
    message = build_message(outgoing(
        in_reply_to="<a@x.example>", references=("<root@x.example>", "<a@x.example>"),
        attachments=(("plan.pdf", "application/pdf", b"%PDF-1.4 plan"),),
        unsubscribe_url="https://hub.example/unsubscribe/abc.def"), "harbour.example", NOW)
    assert message["In-Reply-To"] == "<a@x.example>"
    assert message["References"] == "<root@x.example> <a@x.example>"
    assert message["List-Unsubscribe"] == "<https://hub.example/unsubscribe/abc.def>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.get_content_type() == "multipart/mixed"
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "plan.pdf" and attachment.get_content() == b"%PDF-1.4 plan"


def test_html_of_text_escapes_every_character_of_markup() -> None:
    assert "<script>" not in html_of("<script>alert(1)</script>")


def test_smtp_4xx_and_connection_errors_are_retried_and_5xx_is_final() -> None:
    assert classify(aiosmtplib.SMTPDataError(451, "try later")).retry
    assert not classify(aiosmtplib.SMTPDataError(554, "rejected")).retry
    assert classify(aiosmtplib.SMTPDataError(554, "rejected")).error_code == "smtp_554"
    assert classify(aiosmtplib.SMTPConnectError("refused")).retry
    assert classify(ConnectionRefusedError()).retry
