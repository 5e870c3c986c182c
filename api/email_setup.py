"""Wiring of the email channel for the composition root: sealed files, the inbound handler, the
unsubscribe links, the SMTP sender (when a relay is configured) and the optional SMTP listener."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapters.channels import ChannelSender
from adapters.email_inbound import InboundEmail
from adapters.key_vault import KeyVault
from adapters.postgres import Database
from adapters.sealed_files import SCHEMA_SQL as FILES_SQL
from adapters.sealed_files import SealedFiles
from adapters.smtp_email import SmtpEmailSender
from adapters.smtp_listener import SmtpListener
from adapters.unsubscribe import UnsubscribeLinks
from api.settings import Settings
from domain.application import CommHub
from domain.errors import WorkspaceNotFoundError
from projections.email import EmailMessages


@dataclass
class EmailChannel:
    inbound: InboundEmail
    files: SealedFiles
    links: UnsubscribeLinks
    senders: dict[str, ChannelSender]
    view: EmailMessages


def wire_email(settings: Settings, app: CommHub, database: Database, vault: KeyVault) -> EmailChannel:
    files = SealedFiles(vault)
    files.setup()

    def workspace_exists(workspace_id: Any) -> bool:
        try:
            app.get_workspace(workspace_id)
        except WorkspaceNotFoundError:
            return False
        return True

    base_url = settings.email.public_url or f"http://{settings.host}:{settings.port}"
    links = UnsubscribeLinks(vault, base_url, workspace_exists)
    senders: dict[str, ChannelSender] = {}
    if settings.email.smtp is not None:
        senders["email"] = SmtpEmailSender(settings.email.smtp, app, database, files, links)
    return EmailChannel(InboundEmail(app, database, files), files, links, senders, EmailMessages(FILES_SQL))


def start_listener(settings: Settings, channel: EmailChannel) -> SmtpListener | None:
    """The built-in SMTP listener, when ``COMMHUB_SMTP_LISTENER`` is on."""
    if not settings.email.listener_enabled:
        return None
    relay = settings.email.smtp
    also_accept = (relay.from_address,) if relay is not None else ()
    return SmtpListener(channel.inbound, settings.email.listener_host, settings.email.listener_port,
                        settings.email.max_bytes, also_accept).start()
