"""Domain errors: each names a thing and its problem; the API maps them to problem+json."""


class DomainError(Exception):
    """Base class of the errors a command can refuse with."""

    status = 422


class NotFoundError(DomainError):
    """The thing asked for does not exist in this workspace."""

    status = 404


class WorkspaceNotFoundError(NotFoundError):
    """No such workspace."""


class WorkspaceSlugInvalidError(DomainError):
    """A workspace slug must be 3–40 lowercase letters, digits or hyphens."""


class StaffNotFoundError(NotFoundError):
    """No such staff member in this workspace."""


class StaffRoleInvalidError(DomainError):
    """The role is not one of owner, admin, agent, compliance."""


class ContactNotFoundError(NotFoundError):
    """No such contact in this workspace."""


class ContactErasedError(DomainError):
    """The contact was erased; nothing more can be recorded about them."""

    status = 410


class ContactMergedError(DomainError):
    """The contact was merged into another; act on the surviving contact."""

    status = 409


class ContactMergeInvalidError(DomainError):
    """A contact cannot be merged with itself or across workspaces."""


class PhoneNumberInvalidError(DomainError):
    """The phone number is not a valid E.164 number."""


class EmailAddressInvalidError(DomainError):
    """The email address is not valid."""


class ChannelInvalidError(DomainError):
    """The channel is not one of sms, email, voice, webchat, social."""


class PurposeInvalidError(DomainError):
    """The purpose is not one of transactional, marketing."""


class FieldNotRectifiableError(DomainError):
    """Only name, phone, email, time zone, custom fields and date of birth can be rectified."""


class TimeZoneInvalidError(DomainError):
    """The time zone is not a known IANA zone name."""


class SubjectErasedError(DomainError):
    """The data subject was erased: their key is shredded and will never be created again."""

    status = 410


class SealBrokenError(DomainError):
    """A sealed field failed authentication: it was altered or moved from another event."""

    status = 500


class KeyMissingError(DomainError):
    """A subject's data key is missing although the subject was never erased."""

    status = 500


class ConversationNotFoundError(NotFoundError):
    """No such conversation in this workspace."""


class ConversationClosedError(DomainError):
    """The conversation is closed."""

    status = 409


class MessageBodyInvalidError(DomainError):
    """A message must have a body of 1 to 20,000 characters."""


class LabelInvalidError(DomainError):
    """A label must be 1-40 characters."""


class WorkspaceSlugTakenError(DomainError):
    """Another workspace already uses this slug."""

    status = 409


class CannedResponseNotFoundError(NotFoundError):
    """No such canned response in this workspace."""


class ConsentExpiryInvalidError(DomainError):
    """A consent expiry must include a time zone offset."""


class SnoozeTimeInvalidError(DomainError):
    """A snooze time must include a time zone offset."""


class ContactUnderLegalHoldError(DomainError):
    """The contact is under legal hold: their data must be kept, so erasure is refused until the hold is lifted."""

    status = 409


class ErasureNotFoundError(NotFoundError):
    """No such erasure request in this workspace."""


class ErasureReasonInvalidError(DomainError):
    """The erasure reason is not one of the listed grounds."""


class ReferenceInvalidError(DomainError):
    """A reference must be 1-64 letters, digits or . _ : / # - (a ticket number, never personal data)."""


class RetentionPolicyInvalidError(DomainError):
    """Retention periods must be whole days between 1 and 36,500."""


class AppointmentNotFoundError(NotFoundError):
    """No such appointment in this workspace."""


class AppointmentTimeInvalidError(DomainError):
    """An appointment needs a start and an end with a time zone offset, the end after the start."""


class AppointmentTransitionInvalidError(DomainError):
    """The appointment's status does not allow this change."""

    status = 409


class AppointmentFieldInvalidError(DomainError):
    """Service, location and notes must be text of bounded length."""


class ReminderPolicyInvalidError(DomainError):
    """A reminder policy needs a known kind, channel, offset and a template with known placeholders."""


class ReminderPolicyNotFoundError(NotFoundError):
    """No such reminder policy in this workspace."""


class InboundAddressTakenError(DomainError):
    """Another workspace already receives mail at this address."""

    status = 409


class EmailUnreadableError(DomainError):
    """The email could not be read: it has no valid sender or is not a MIME message."""


class EmailNotRoutedError(DomainError):
    """No workspace receives mail at the recipient address."""


class AttachmentNotFoundError(NotFoundError):
    """No such attachment in this workspace."""


class QuietHoursInvalidError(DomainError):
    """Quiet hours must be two HH:MM times."""


class PhoneNumberTakenError(DomainError):
    """Another workspace already owns this phone number."""

    status = 409


class PhoneNumberNotAttachedError(NotFoundError):
    """No workspace owns this phone number."""


class SmsSettingsInvalidError(DomainError):
    """An SMS or voice setting is not valid."""


class DateOfBirthInvalidError(DomainError):
    """A date of birth must be a past calendar date."""


class MinimumAgeInvalidError(DomainError):
    """The minimum age of the under-age guard must be 1 to 25 years."""


class WidgetNotConfiguredError(NotFoundError):
    """The web chat widget is not set up in this workspace."""


class WidgetKeyTakenError(DomainError):
    """The widget public key is already in use."""

    status = 409


class WidgetOriginInvalidError(DomainError):
    """An allowed origin must be scheme://host[:port]."""


class WidgetPrivacyUrlInvalidError(DomainError):
    """The privacy policy URL must be an http(s) URL."""


class WidgetIdentityInvalidError(DomainError):
    """The visitor identity is malformed or its signature does not match."""

    status = 403


class WidgetIdentityExpiredError(DomainError):
    """The visitor identity has expired."""

    status = 403


class ApiKeyNotFoundError(NotFoundError):
    """No such API key in this workspace."""


class ApiKeyScopeInvalidError(DomainError):
    """An API key needs a name and one or more known scopes."""


class WebhookNotFoundError(NotFoundError):
    """No such webhook subscription in this workspace."""


class WebhookUrlInvalidError(DomainError):
    """A webhook URL must be an absolute http(s) URL."""


class WebhookEventTypeInvalidError(DomainError):
    """A webhook subscription needs one or more known event types."""
