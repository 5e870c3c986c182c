"""Reading raw inbound email (RFC 5322 / MIME) with the standard library's ``email`` package.

Lenient where mail is messy (unknown or wrong charsets decode with replacement characters,
HTML-only mail becomes text), strict where we cannot go on (no sender: ``EmailUnreadableError``).
Delivery status notifications (bounces) are recognised and reported, not treated as messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser
from typing import Any

from domain.email import is_auto_reply
from domain.errors import EmailUnreadableError

MAX_TEXT = 100_000  # characters of body text kept; the rest is cut (and marked)
MAX_ATTACHMENTS = 20
MESSAGE_ID = re.compile(r"<[^<>\s]+>")
AUTO_REPLY_HEADERS = ("Auto-Submitted", "Precedence", "X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress")


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Bounce:
    """A delivery status notification: which of our messages failed, and the DSN status code."""

    original_message_ids: list[str]
    status: str | None
    failed: bool


@dataclass(frozen=True)
class ParsedEmail:
    message_id: str | None
    sender: str
    sender_name: str | None
    recipients: list[str]
    subject: str
    text: str
    in_reply_to: str | None
    references: list[str]
    auto_reply: bool
    attachments: list[Attachment] = field(default_factory=list)
    bounce: Bounce | None = None
    truncated: bool = False


def _header(message: Message, name: str) -> str:
    """A header's decoded value, or "" when absent or so broken it cannot be read."""
    try:
        value = message.get(name)
    except Exception:  # a malformed header must not stop the message
        return ""
    return "" if value is None else str(value).replace("\x00", "").strip()


def _ids(value: str) -> list[str]:
    return MESSAGE_ID.findall(value)


def _text_of(part: Message) -> str:
    """A text part's content; unknown or wrong charsets decode with replacement characters."""
    try:
        content = part.get_content()  # type: ignore[attr-defined]
        if isinstance(content, str):
            return content
    except (LookupError, UnicodeError, ValueError, AssertionError):
        pass
    payload = part.get_payload(decode=True)
    return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


class _TextFromHtml(HTMLParser):
    BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style", "head"):
            self.skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head"):
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def text_from_html(markup: str) -> str:
    parser = _TextFromHtml()
    parser.feed(markup)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _body(message: EmailMessage) -> tuple[str, list[Message]]:
    """The body text (plain preferred, else HTML made text) and the parts it came from."""
    body = message.get_body(preferencelist=("plain", "html"))
    if body is None:
        return "", []
    used: list[Message] = [body]
    if body.get_content_subtype() == "html":
        return text_from_html(_text_of(body)), used
    return _text_of(body), used


def _attachments(message: EmailMessage, body_parts: list[Message]) -> list[Attachment]:
    found: list[Attachment] = []
    for part in message.walk():
        if part.is_multipart() or any(part is used for used in body_parts):
            continue
        if part.get_content_maintype() == "text" and not part.get_filename() and not _is_attachment(part):
            continue  # an alternative body (e.g. the HTML twin of the text), not a file
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            continue
        found.append(Attachment(filename=(part.get_filename() or "attachment").replace("\x00", "")[:200],
                                content_type=part.get_content_type(), data=data))
        if len(found) == MAX_ATTACHMENTS:
            break
    return found


def _is_attachment(part: Message) -> bool:
    return (part.get_content_disposition() or "") == "attachment"


def _bounce(message: EmailMessage) -> Bounce | None:
    if message.get_content_type() != "multipart/report" or message.get_param("report-type") != "delivery-status":
        return None
    status: str | None = None
    failed = False
    originals: list[str] = []
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/delivery-status":
            for block in part.get_payload() or []:
                if isinstance(block, Message):
                    action = _header(block, "Action").lower()
                    failed = failed or action == "failed"
                    status = status or (_header(block, "Status").split(" ")[0] or None)
        elif kind == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                originals += _ids(_header(inner[0], "Message-ID"))
        elif kind == "text/rfc822-headers":
            headers = HeaderParser().parsestr(_text_of(part))
            originals += _ids(str(headers.get("Message-ID") or ""))
    return Bounce(original_message_ids=originals, status=status, failed=failed)


def parse_email(raw: bytes) -> ParsedEmail:
    """Read one raw message (``message/rfc822`` bytes)."""
    if not raw.strip():
        raise EmailUnreadableError("the email is empty")
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    sender_name, sender = parseaddr(_header(message, "From"))
    if not sender or "@" not in sender:
        raise EmailUnreadableError("the email has no valid From address")
    recipients = [address for _, address in getaddresses(
        [_header(message, name) for name in ("Delivered-To", "X-Original-To", "To", "Cc")]) if "@" in address]
    text, used = _body(message)
    text = text.replace("\x00", "").replace("\r\n", "\n").strip()
    truncated = len(text) > MAX_TEXT
    message_ids = _ids(_header(message, "Message-ID"))
    in_reply_to = _ids(_header(message, "In-Reply-To"))
    return ParsedEmail(
        message_id=message_ids[0] if message_ids else None, sender=sender, sender_name=sender_name or None,
        recipients=recipients, subject=_header(message, "Subject"),
        text=text[:MAX_TEXT] + ("\n[…truncated]" if truncated else ""), truncated=truncated,
        in_reply_to=in_reply_to[0] if in_reply_to else None, references=_ids(_header(message, "References")),
        auto_reply=is_auto_reply({name: _header(message, name) for name in AUTO_REPLY_HEADERS if name in message}),
        attachments=_attachments(message, used), bounce=_bounce(message),
    )
