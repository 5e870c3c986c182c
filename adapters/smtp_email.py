"""Outbound email through an SMTP relay (aiosmtplib): a ChannelSender for the outbox.

Each message gets a Message-ID derived from its own id (a retry sends the same message, which
receivers de-duplicate), threads under the conversation's last inbound email, carries a text and
an HTML part and its attachments, and marketing mail carries RFC 8058 one-click unsubscribe.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any
from uuid import UUID

import aiosmtplib

from adapters.channels import DeliveryResult, OutboundMessage
from adapters.postgres import Database
from adapters.sealed_files import SealedFiles
from adapters.unsubscribe import UnsubscribeLinks
from domain.application import CommHub
from domain.email import reply_subject, thread_ids
from domain.personal import readable

log = logging.getLogger(__name__)

SECURITY_MODES = ("starttls", "tls", "none")


@dataclass(frozen=True)
class SmtpRelay:
    """Where and how to hand outbound mail over: the relay's address, its TLS mode and login."""

    host: str
    port: int = 587
    security: str = "starttls"  # starttls (upgrade after connecting), tls (implicit, port 465), none
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    from_address: str = ""
    timeout: float = 30.0
    ca_file: str | None = None  # a CA bundle for relays with a private certificate authority

    @property
    def domain(self) -> str:
        return self.from_address.rsplit("@", 1)[-1]


@dataclass(frozen=True)
class OutgoingEmail:
    """Everything one outbound email says, as plain values."""

    message_id: UUID
    from_address: str
    from_name: str
    to_address: str
    to_name: str | None
    subject: str
    body: str
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    attachments: tuple[tuple[str, str, bytes], ...] = ()  # (filename, content type, data)
    unsubscribe_url: str | None = None


def message_id_header(message_id: UUID, domain: str) -> str:
    """Stable per message: a retried send carries the same Message-ID."""
    return f"<{message_id}@{domain}>"


def html_of(text: str) -> str:
    """The text body as HTML, every character escaped (a body can never inject markup)."""
    paragraphs = "".join(
        f"<p>{'<br>'.join(html.escape(line) for line in block.splitlines())}</p>\n"
        for block in text.split("\n\n") if block.strip()
    )
    return f'<!doctype html>\n<html><head><meta charset="utf-8"></head><body>\n{paragraphs}</body></html>\n'


def build_message(email: OutgoingEmail, domain: str, now: datetime) -> EmailMessage:
    message = EmailMessage(policy=SMTP)
    message["Message-ID"] = message_id_header(email.message_id, domain)
    message["Date"] = format_datetime(now)
    message["From"] = Address(display_name=email.from_name, addr_spec=email.from_address)
    message["To"] = Address(display_name=email.to_name or "", addr_spec=email.to_address)
    message["Subject"] = email.subject
    if email.in_reply_to:
        message["In-Reply-To"] = email.in_reply_to
        message["References"] = " ".join(email.references or (email.in_reply_to,))
    if email.unsubscribe_url:
        message["List-Unsubscribe"] = f"<{email.unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message["Precedence"] = "bulk"  # well-behaved auto-responders do not answer bulk mail
    message.set_content(email.body)
    message.add_alternative(html_of(email.body), subtype="html")
    for filename, content_type, data in email.attachments:
        maintype, _, subtype = content_type.partition("/")
        if not subtype:
            maintype, subtype = "application", "octet-stream"
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message


def classify(error: BaseException) -> DeliveryResult:
    """SMTP 4xx and connection trouble are worth retrying; a 5xx answer is final."""
    code: int | None = None
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused) and error.recipients:
        code = error.recipients[0].code
    elif isinstance(error, aiosmtplib.SMTPResponseException):
        code = error.code
    if code is not None and 500 <= code < 600:
        return DeliveryResult("failed", error_code=f"smtp_{code}")
    if code is not None:
        return DeliveryResult("failed", error_code=f"smtp_{code}", retry=True)
    return DeliveryResult("failed", error_code="smtp_unreachable", retry=True)


class _Client(aiosmtplib.SMTP):
    """An SMTP client that can tell when its connection is really gone. Closing a TLS connection
    finishes asynchronously; the loop must not end before it does, or the socket leaks."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.connected_once = False
        self.lost = asyncio.Event()

    async def _create_connection(self, *args: Any, **kwargs: Any) -> Any:
        response = await super()._create_connection(*args, **kwargs)
        self.connected_once = True
        return response

    def _on_connection_lost(self, *args: Any) -> None:
        super()._on_connection_lost(*args)
        self.lost.set()


async def deliver(relay: SmtpRelay, message: EmailMessage) -> DeliveryResult:
    """Hand one message to the relay; the outcome, never an exception."""
    client = _Client(hostname=relay.host, port=relay.port, timeout=relay.timeout, use_tls=relay.security == "tls",
                     start_tls=relay.security == "starttls", username=relay.username, password=relay.password,
                     cert_bundle=relay.ca_file)
    try:
        await client.connect()
        await client.send_message(message)
        await client.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
        log.warning("SMTP relay refused or unreachable", extra={"error": type(error).__name__})
        return classify(error)
    finally:
        client.close()
        if client.connected_once:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(client.lost.wait(), 2.0)
    return DeliveryResult("sent", provider_message_id=str(message["Message-ID"]))


class SmtpEmailSender:
    """The email channel when an SMTP relay is configured (otherwise the sandbox captures email)."""

    def __init__(
        self, relay: SmtpRelay, app: CommHub, database: Database, files: SealedFiles,
        unsubscribe: UnsubscribeLinks, clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.relay = relay
        self.app = app
        self.database = database
        self.files = files
        self.unsubscribe = unsubscribe
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    def send(self, message: OutboundMessage) -> DeliveryResult:
        email = self.compose(message)
        if email is None:
            return DeliveryResult("failed", error_code="no_address")
        return asyncio.run(deliver(self.relay, build_message(email, self.relay.domain, self.clock())))

    def compose(self, message: OutboundMessage) -> OutgoingEmail | None:
        """The email for an outbox message: recipient from the contact, subject and threading from
        the conversation's email history, attachments from sealed storage."""
        contact = self.app.get_contact(message.workspace_id, message.contact_id)
        address = readable(contact.email)
        if not address or message.body is None:
            return None
        workspace = self.app.get_workspace(message.workspace_id)
        composed, last_inbound, purpose = self._history(message)
        subject = (composed or {}).get("subject") or reply_subject(
            (last_inbound or {}).get("subject"), f"Message from {workspace.name}")
        in_reply_to, references = None, ()
        if last_inbound and last_inbound.get("rfc_message_id"):
            in_reply_to = last_inbound["rfc_message_id"]
            references = tuple(thread_ids(in_reply_to, list(last_inbound.get("refs") or [])))
        attachments = tuple(
            (a["filename"], a["content_type"], self.files.get(UUID(a["attachment_id"]), message.workspace_id)[1])
            for a in (composed or {}).get("attachments") or []
        )
        unsubscribe_url = (self.unsubscribe.url(message.workspace_id, message.contact_id, "marketing")
                           if purpose == "marketing" else None)
        return OutgoingEmail(
            message_id=message.message_id, from_address=self.relay.from_address, from_name=workspace.name,
            to_address=address, to_name=readable(contact.name), subject=subject, body=message.body,
            in_reply_to=in_reply_to, references=references, attachments=attachments, unsubscribe_url=unsubscribe_url,
        )

    def _history(self, message: OutboundMessage) -> tuple[dict[str, Any] | None, dict[str, Any] | None, str]:
        with self.database.connection() as conn:
            composed = conn.execute(
                "SELECT subject, attachments FROM commhub_email_messages WHERE message_id = %s AND direction = 'out'",
                (message.message_id,),
            ).fetchone()
            inbound = conn.execute(
                "SELECT subject, rfc_message_id, refs FROM commhub_email_messages"
                " WHERE conversation_id = %s AND direction = 'in' ORDER BY position DESC LIMIT 1",
                (message.conversation_id,),
            ).fetchone()
            purpose = conn.execute("SELECT purpose FROM commhub_outbox WHERE message_id = %s",
                                   (message.message_id,)).fetchone()
        return (
            {"subject": composed[0], "attachments": composed[1]} if composed else None,
            {"subject": inbound[0], "rfc_message_id": inbound[1], "refs": inbound[2]} if inbound else None,
            purpose[0] if purpose else "transactional",
        )
