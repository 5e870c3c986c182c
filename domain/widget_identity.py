"""Visitor identity verification: the host site signs ``user_id:expires`` with HMAC-SHA256 under the
workspace's widget secret, so a visitor cannot claim to be someone else and a copied signature
stops working when it expires. A rotated-out secret still verifies during its grace period."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.errors import WidgetIdentityExpiredError, WidgetIdentityInvalidError

SIGNATURE = re.compile(r"^[0-9a-f]{64}$")
MAX_USER_ID = 200


@dataclass(frozen=True)
class IdentitySecret:
    secret: str
    valid_until: datetime | None  # None: the current secret

    def usable(self, now: datetime) -> bool:
        return self.valid_until is None or now < self.valid_until


@dataclass(frozen=True)
class VerifiedIdentity:
    user_id: str
    expires: datetime


def identity_message(user_id: str, expires: int) -> bytes:
    """What is signed: the user id, a colon and the expiry in Unix seconds (digits only, so the
    last colon separates them unambiguously)."""
    return f"{user_id}:{expires}".encode()


def sign_identity(secret: str, user_id: str, expires: int) -> str:
    """The signature the host site's server computes (hex HMAC-SHA256)."""
    return hmac.new(secret.encode(), identity_message(user_id, expires), hashlib.sha256).hexdigest()


def verify_identity(
    user_id: object, expires: object, signature: object, secrets: list[IdentitySecret], now: datetime,
    max_lifetime: timedelta,
) -> VerifiedIdentity:
    """The identity, if a usable secret signed it, it has not expired, and it does not live longer than
    ``max_lifetime`` from now; raises otherwise (never saying which secret or what was expected)."""
    if (not isinstance(user_id, str) or not 0 < len(user_id) <= MAX_USER_ID or not user_id.isprintable()
            or not isinstance(expires, int) or isinstance(expires, bool) or not 0 < expires < 2**40
            or not isinstance(signature, str) or not SIGNATURE.fullmatch(signature.lower())):
        raise WidgetIdentityInvalidError("identity must be {user_id, expires (Unix seconds), signature (hex)}")
    message = identity_message(user_id, expires)
    signed = any(
        hmac.compare_digest(hmac.new(s.secret.encode(), message, hashlib.sha256).hexdigest(), signature.lower())
        for s in secrets if s.usable(now)
    )
    if not signed:
        raise WidgetIdentityInvalidError("identity signature does not match")
    expiry = datetime.fromtimestamp(expires, now.tzinfo)
    if expiry <= now:
        raise WidgetIdentityExpiredError("identity has expired; the host site must sign a fresh one")
    if expiry - now > max_lifetime:
        raise WidgetIdentityInvalidError("identity expiry is too far in the future")
    return VerifiedIdentity(user_id, expiry)
