"""The built-in SMTP listener (aiosmtpd): receives mail for attached inbound addresses and hands
each message to the same inbound handler as the webhook. Off unless enabled in the settings."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.controller import Controller

from adapters.email_inbound import InboundEmail
from domain.email import normalised_address
from domain.errors import DomainError

log = logging.getLogger(__name__)


class InboundSmtpHandler:
    """aiosmtpd handler: unknown recipients are refused at RCPT; DATA is stored or refused whole."""

    def __init__(self, inbound: InboundEmail, also_accept: tuple[str, ...] = ()) -> None:
        self.inbound = inbound
        self.also_accept = {normalised_address(a) for a in also_accept if a}  # e.g. our From address, for bounces

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        known = normalised_address(address) in self.also_accept or await asyncio.to_thread(
            self.inbound.app.workspace_for_inbound_address, address)
        if not known:
            return "550 5.1.1 No mailbox here by that name"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content or b""
        try:
            await asyncio.to_thread(self.inbound.handle, bytes(raw), list(envelope.rcpt_tos))
        except DomainError as error:
            if error.status >= 500:
                log.error("inbound email failed", extra={"error": type(error).__name__})
                return "451 4.3.0 Temporary failure, please try again later"
            return f"550 5.6.0 {(type(error).__doc__ or 'Message refused').strip().splitlines()[0]}"
        except Exception as error:  # the sender keeps the message and retries: nothing is lost
            log.error("inbound email failed", extra={"error": type(error).__name__})
            return "451 4.3.0 Temporary failure, please try again later"
        return "250 Message accepted"


class SmtpListener:
    def __init__(self, inbound: InboundEmail, host: str, port: int, max_bytes: int,
                 also_accept: tuple[str, ...] = ()) -> None:
        self.controller = Controller(InboundSmtpHandler(inbound, also_accept), hostname=host, port=port,
                                     data_size_limit=max_bytes)

    def start(self) -> SmtpListener:
        # aiosmtpd logs every SMTP line (addresses included) to "mail.log": personal data, so it stays
        # silent; our handler logs failures by type only.
        logging.getLogger("mail.log").setLevel(logging.CRITICAL + 1)
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
