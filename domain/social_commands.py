"""Social channel commands of the application (a mixin of ``CommHub``): Meta accounts, inbound
messages and statuses, the 24-hour window on replies, and WhatsApp templates."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Protocol, TypeVar
from uuid import UUID, uuid4

from eventsourcing.persistence import IntegrityError

from domain import identifiers
from domain.consent import SendDecision
from domain.contact import Contact
from domain.conversation import Conversation, InboundReceipt, conversation_id_for
from domain.errors import PhoneNumberInvalidError
from domain.personal import readable
from domain.social import (
    ACCOUNT_ID,
    SOCIAL,
    MetaAccount,
    Platform,
    CustomerWrote,
    SocialAddressUsed,
    SocialIdentityLinked,
    SocialMessageSent,
    SocialSendReceipt,
    SocialStatusChanged,
    SocialTemplate,
    advances,
    last_wrote,
    platform_of,
    recipient,
    social_outbound,
    thread_for,
    up_to,
    window,
)
from domain.social_errors import (
    MetaAccountInvalidError,
    MetaAccountNotConnectedError,
    MetaAccountTakenError,
    SocialTemplateInvalidError,
    SocialThreadInvalidError,
)

T = TypeVar("T")
TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,512}$")
LANGUAGE = re.compile(r"^[a-z]{2,3}(_[A-Za-z]{2,4})?$")
MAX_PARAMETERS = 20
PLACEHOLDER_NAMES = {Platform.MESSENGER: "Messenger contact", Platform.INSTAGRAM: "Instagram contact",
                     Platform.WHATSAPP: "WhatsApp contact"}


def awaits_profile(contact: Contact | None, workspace_id: UUID, platform: Platform) -> bool:
    """A contact of this workspace that may still be named from its Meta profile: active, not
    restricted (no new processing), and still under the placeholder name it was created with."""
    return contact is not None and contact.workspace_id == workspace_id and not contact.erased \
        and contact.merged_into is None and not contact.restricted \
        and readable(contact.name) == PLACEHOLDER_NAMES[platform]


class SocialHandles(Protocol):
    """A blind index from a platform's person id (per business account) to a contact."""

    def find(self, workspace_id: UUID, kind: str, value: str) -> UUID | None: ...

    def claim(self, workspace_id: UUID, kind: str, value: str, contact_id: UUID) -> UUID: ...


@dataclass(frozen=True)
class InboundSocial:
    contact_id: UUID
    conversation_id: UUID
    message_id: UUID
    new: bool


def check_account(platform: str, account_id: str) -> tuple[Platform, str]:
    try:
        checked = Platform(platform)
    except ValueError:
        raise MetaAccountInvalidError("platform must be messenger, instagram or whatsapp") from None
    if not isinstance(account_id, str) or not ACCOUNT_ID.fullmatch(account_id):
        raise MetaAccountInvalidError("account_id must be the numeric id Meta shows for the page, account or number")
    return checked, account_id


def social_handle(platform: Platform, account_id: str, sender_id: str) -> tuple[str, str]:
    """(kind, value) of a PSID/IGSID in the handle index: those ids are scoped to the business account."""
    return platform.value, f"{account_id}:{sender_id}"


def check_template(name: str, language: str, parameters: list[str]) -> None:
    if not TEMPLATE_NAME.fullmatch(name or "") or not LANGUAGE.fullmatch(language or ""):
        raise SocialTemplateInvalidError("name must be the template's name (a-z, 0-9, _) and language a code such"
                                         " as en_US")
    if len(parameters) > MAX_PARAMETERS or any(not p.strip() or len(p) > 1024 for p in parameters):
        raise SocialTemplateInvalidError(f"at most {MAX_PARAMETERS} parameters of 1-1024 characters")


def render_template(name: str, language: str, parameters: list[str]) -> str:
    """What the agent sees in the thread for a template message."""
    shown = f"[template {name} ({language})]"
    return f"{shown} {' | '.join(parameters)}" if parameters else shown


class SocialCommands:
    """Mixed into ``CommHub``; uses its repository helpers (``_get``, ``save``, ``_retrying``…)."""

    _get: Any
    save: Any
    _conversation_for: Any
    _inbound_conversation: Any
    recent: Any
    get_contact: Any
    get_conversation: Any
    channel_decision: Any
    find_or_create_contact: Any
    _contact_exists: Any
    owners: Any
    social_handles: SocialHandles | None = None
    events: Any

    if TYPE_CHECKING:
        @staticmethod
        def _retrying(attempt: Callable[[], T]) -> T: ...

    # Accounts ------------------------------------------------------------------------------

    def connect_meta_account(self, workspace_id: UUID, platform: str, account_id: str, now: datetime) -> None:
        """Route this page's, Instagram account's or WhatsApp number's webhooks to the workspace."""
        checked, account_id = check_account(platform, account_id)

        def attempt() -> None:
            account = self._get(MetaAccount.id_for(checked, account_id), MetaAccount)
            if account is None:
                account = MetaAccount.connect(checked, account_id, workspace_id, now)
            elif account.workspace_id not in (None, workspace_id):
                raise MetaAccountTakenError("another workspace already connected this account")
            account.reconnect(workspace_id, now)
            if account.pending_events:
                self.save(account)

        try:
            self._retrying(attempt)
        except IntegrityError:
            raise MetaAccountTakenError("another workspace already connected this account") from None

    def disconnect_meta_account(self, workspace_id: UUID, platform: str, account_id: str, now: datetime) -> None:
        checked, account_id = check_account(platform, account_id)

        def attempt() -> None:
            account = self._get(MetaAccount.id_for(checked, account_id), MetaAccount)
            if account is None or account.workspace_id != workspace_id:
                raise MetaAccountNotConnectedError("this workspace has not connected this account")
            account.reconnect(None, now)
            self.save(account)

        self._retrying(attempt)

    def workspace_for_meta_account(self, platform: Platform, account_id: str) -> UUID | None:
        account: MetaAccount | None = self._get(MetaAccount.id_for(platform, account_id), MetaAccount)
        return account.workspace_id if account is not None else None

    # Inbound -------------------------------------------------------------------------------

    def social_contact(self, workspace_id: UUID, platform: Platform, account_id: str, sender_id: str,
                       profile_name: str | None, now: datetime) -> UUID:
        """The contact behind a sender: a WhatsApp wa_id is a phone number (the contact with that
        phone, or a new one); a PSID or IGSID is a handle of its own (a new contact on first contact)."""
        name = (profile_name or "").strip()[:200] or None
        if platform is Platform.WHATSAPP:
            try:
                phone = identifiers.e164(f"+{sender_id}")
            except PhoneNumberInvalidError:
                phone = None
            if phone is not None:
                return self.find_or_create_contact(workspace_id, kind="phone", value=phone,  # type: ignore[no-any-return]
                                                   name=name, now=now)
            # not a dialable number: a handle of its own, like a PSID
        assert self.social_handles is not None, "social routing needs the social handle index"
        kind, value = social_handle(platform, account_id, sender_id)
        found = self.social_handles.find(workspace_id, kind, value)
        if found is None:
            found = self.social_handles.claim(workspace_id, kind, value, uuid4())
        if not self._contact_exists(workspace_id, found):  # claimed here, or by a process that died before creating
            contact = Contact.create(contact_id=found, workspace_id=workspace_id,
                                     name=name or PLACEHOLDER_NAMES[platform], phone=None, email=None,
                                     time_zone=None, custom_fields={}, actor_id=None, now=now)
            contact.trigger_event(SocialIdentityLinked, workspace_id=workspace_id, platform=platform.value,
                                  account_id=account_id, sender_id=sender_id, timestamp=now)
            try:
                self.save(contact)
            except IntegrityError:
                pass  # created concurrently under the same claimed id
            self.owners.remember(Contact, found, workspace_id)
        return found

    def profile_lookup(self, workspace_id: UUID, contact_id: UUID, platform: Platform,
                       account_id: str) -> str | None:
        """The PSID or IGSID to look up on Meta for a contact that still has the placeholder name
        of ``platform`` (None: named meanwhile, erased, merged, restricted, or no such identity)."""
        if not awaits_profile(self._get(contact_id, Contact), workspace_id, platform):
            return None
        for event in self.events.get(contact_id):
            if isinstance(event, SocialIdentityLinked) and event.platform == platform.value \
                    and event.account_id == account_id:
                return readable(event.sender_id)  # type: ignore[no-any-return]
        return None

    def name_from_profile(self, workspace_id: UUID, contact_id: UUID, platform: Platform, name: str,
                          now: datetime) -> bool:
        """Name a contact from its Meta profile, only if it still has the placeholder name (an agent
        who named it meanwhile wins: a concurrent save makes this load again and see their name)."""
        def attempt() -> bool:
            contact = self._get(contact_id, Contact)
            if not awaits_profile(contact, workspace_id, platform):
                return False
            contact.rectify({"name": name}, None, now)
            self.save(contact)
            return True

        return self._retrying(attempt)

    def receive_social(
        self, *, workspace_id: UUID, contact_id: UUID, platform: Platform, account_id: str, sender_id: str,
        provider_message_id: str, body: str, attachments: list[dict[str, Any]], now: datetime,
        message_id: UUID | None = None, sent_at: datetime | None = None,
    ) -> InboundSocial:
        """Store an inbound social message once per provider id, on the contact the sender is now
        (a merged-away duplicate's messages land on the contact it was merged into)."""
        message_id = message_id or uuid4()
        receipt_key = f"{platform.value}:{provider_message_id}"

        def attempt() -> InboundSocial:
            contact = self.get_contact(workspace_id, contact_id)
            while contact.merged_into is not None:
                contact = self.get_contact(workspace_id, contact.merged_into)
            conversation, loan = self._inbound_conversation(workspace_id, contact.id, SOCIAL,
                                                            thread_for(platform, account_id), now)
            if readable(recipient(conversation)) != sender_id:
                conversation.trigger_event(SocialAddressUsed, workspace_id=workspace_id, contact_id=contact.id,
                                           platform=platform.value, account_id=account_id, recipient_id=sender_id,
                                           timestamp=now)
            conversation.trigger_event(CustomerWrote, workspace_id=workspace_id, contact_id=contact.id,
                                       sent_at=min(sent_at or now, now), timestamp=now)
            conversation.receive(message_id, body, attachments, provider_message_id, now)
            receipt = InboundReceipt.record(workspace_id=workspace_id, channel=SOCIAL, provider_message_id=receipt_key,
                                            message_id=message_id, conversation_id=conversation.id, now=now)
            try:
                self.save(conversation, receipt)
                self.recent.keep(conversation, loan)
            except IntegrityError:  # a retried webhook (the receipt exists: nothing was saved), or a race
                found = self._get(InboundReceipt.id_for(workspace_id, SOCIAL, receipt_key), InboundReceipt)
                if found is not None:
                    return InboundSocial(contact.id, found.conversation_id, found.message_id, False)
                raise
            return InboundSocial(contact.id, conversation.id, message_id, True)

        return self._retrying(attempt)

    # Sending -------------------------------------------------------------------------------

    def social_window(self, conversation: Conversation, decision: SendDecision, now: datetime) -> SendDecision:
        """The 24-hour customer-service window on free text (called by every reply)."""
        found = platform_of(conversation.thread) if conversation.channel == SOCIAL else None
        if not decision.allowed or found is None:
            return decision
        verdict = window(found[0], last_wrote(conversation), now)
        return decision if verdict.mode is not None else SendDecision(False, verdict.refusal)

    def send_social_template(
        self, workspace_id: UUID, conversation_id: UUID, *, name: str, language: str, parameters: list[str],
        author_id: UUID | None, now: datetime, message_id: UUID | None = None, purpose: str = "transactional",
    ) -> tuple[UUID, SendDecision]:
        """Queue an approved WhatsApp template (allowed outside the 24-hour window), or record why not."""
        message_id = message_id or uuid4()

        def attempt() -> tuple[UUID, SendDecision]:
            conversation = self.get_conversation(workspace_id, conversation_id)  # 404 before any other answer
            check_template(name, language, parameters)
            identifiers.purpose(purpose)
            found = platform_of(conversation.thread) if conversation.channel == SOCIAL else None
            if found is None or found[0] is not Platform.WHATSAPP:
                raise SocialThreadInvalidError("templates are sent in WhatsApp conversations only")
            contact = self.get_contact(workspace_id, conversation.contact_id)
            decision = self.channel_decision(contact, SOCIAL, purpose, now)  # consent and restriction
            body = render_template(name, language, parameters)
            if not decision.allowed:
                conversation.refuse(message_id, "" if contact.erased else body, author_id, purpose,
                                    str(decision.reason), now)
                self.save(conversation)
                return message_id, decision
            conversation.send(message_id, body, author_id, purpose, now)
            template = SocialTemplate.choose(message_id, workspace_id, conversation.contact_id, name, language,
                                             parameters, now)
            self.save(conversation, template)
            return message_id, decision

        return self._retrying(attempt)

    def social_template(self, message_id: UUID) -> SocialTemplate | None:
        return self._get(SocialTemplate.id_for(message_id), SocialTemplate)  # type: ignore[no-any-return]

    def record_social_send(self, workspace_id: UUID, conversation_id: UUID, message_id: UUID, platform: Platform,
                           provider_message_id: str, now: datetime) -> None:
        """Meta took our message: remember its id (statuses name it) and when it went (read watermarks)."""
        def attempt() -> None:
            if self._get(SocialSendReceipt.id_for(platform, provider_message_id), SocialSendReceipt) is not None:
                return
            conversation = self.get_conversation(workspace_id, conversation_id)
            conversation.trigger_event(SocialMessageSent, workspace_id=workspace_id,
                                       contact_id=conversation.contact_id, message_id=message_id,
                                       provider_message_id=provider_message_id, timestamp=now)
            receipt = SocialSendReceipt.record(platform, provider_message_id, workspace_id, conversation_id,
                                               message_id, now)
            self.save(conversation, receipt)

        self._retrying(attempt)

    # Statuses ------------------------------------------------------------------------------

    def record_social_status(self, workspace_id: UUID, platform: Platform, provider_message_ids: list[str],
                             status: str, error_code: str | None, now: datetime) -> int:
        """Statuses of our messages named by Meta's ids; unknown ids are ignored. Returns how many moved."""
        by_conversation: dict[UUID, list[UUID]] = {}
        for provider_id in provider_message_ids:
            receipt = self._get(SocialSendReceipt.id_for(platform, provider_id), SocialSendReceipt)
            if receipt is not None and receipt.workspace_id == workspace_id:
                by_conversation.setdefault(receipt.conversation_id, []).append(receipt.message_id)
        moved = 0
        for conversation_id, message_ids in by_conversation.items():
            moved += self._advance_social(workspace_id, conversation_id, lambda c, ids=message_ids: ids, status,
                                          error_code, now)
        return moved

    def record_social_watermark(self, workspace_id: UUID, platform: Platform, account_id: str, sender_id: str,
                                watermark: datetime, status: str, now: datetime) -> int:
        """Messenger's ``read``/``delivery`` watermark: every message we sent up to it was read/delivered."""
        kind, value = social_handle(platform, account_id, sender_id)
        contact_id = self.social_handles.find(workspace_id, kind, value) if self.social_handles else None
        if contact_id is None:
            return 0
        contact = self.get_contact(workspace_id, contact_id)
        moved = 0
        for candidate in (contact.id, contact.merged_into):  # before a merge, and after it
            if candidate is None:
                continue
            conversation_id = conversation_id_for(candidate, SOCIAL, thread_for(platform, account_id))
            if self._get(conversation_id, Conversation) is not None:
                moved += self._advance_social(workspace_id, conversation_id, lambda c: up_to(c, watermark, status),
                                              status, None, now)
        return moved

    def record_social_read_up_to(self, workspace_id: UUID, platform: Platform, provider_message_id: str,
                                 now: datetime) -> int:
        """Instagram's ``read`` names the last message read: it and everything we sent before it were read."""
        receipt = self._get(SocialSendReceipt.id_for(platform, provider_message_id), SocialSendReceipt)
        if receipt is None or receipt.workspace_id != workspace_id:
            return 0

        def chosen(conversation: Conversation) -> list[UUID]:
            entry = social_outbound(conversation).get(str(receipt.message_id))
            if entry is None:
                return []
            return up_to(conversation, datetime.fromtimestamp(entry[0], tz=now.tzinfo), "read")

        return self._advance_social(workspace_id, receipt.conversation_id, chosen, "read", None, now)

    def _advance_social(self, workspace_id: UUID, conversation_id: UUID, pick: Callable[[Conversation], list[UUID]],
                 status: str, error_code: str | None, now: datetime) -> int:
        def attempt() -> int:
            conversation = self.get_conversation(workspace_id, conversation_id)
            tracked = social_outbound(conversation)
            moved = [m for m in pick(conversation) if advances((tracked.get(str(m)) or [0, None])[1], status)]
            if not moved:
                return 0
            conversation.trigger_event(SocialStatusChanged, workspace_id=workspace_id,
                                       contact_id=conversation.contact_id, message_ids=moved, status=status,
                                       timestamp=now)
            for message_id in moved:
                conversation.trigger_event(Conversation.MessageDeliveryUpdated, workspace_id=workspace_id,
                                           contact_id=conversation.contact_id, message_id=message_id, status=status,
                                           error_code=error_code, timestamp=now)
            self.save(conversation)
            return len(moved)

        return self._retrying(attempt)
