"""Visitor identity verification: HMAC-SHA256 of user id and expiry under the widget secret, with
expiry, a bound on how far ahead it may reach, and rotation with a grace period."""

from datetime import datetime, timedelta, timezone
from uuid import uuid4

import pytest

from domain.errors import (
    WidgetIdentityExpiredError,
    WidgetIdentityInvalidError,
    WidgetOriginInvalidError,
    WidgetPrivacyUrlInvalidError,
)
from domain.personal import personal_fields
from domain.widget import WebWidget, check_origins, check_privacy_url
from domain.widget_identity import IdentitySecret, sign_identity, verify_identity

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)
SECRET = "current-secret-of-the-workspace"
IN_AN_HOUR = int((NOW + timedelta(hours=1)).timestamp())


CURRENT = (IdentitySecret(SECRET, None),)


def verify(user_id, expires, signature, secrets=CURRENT, now=NOW):
    return verify_identity(user_id, expires, signature, list(secrets), now, DAY)


def test_a_signature_made_with_the_workspace_secret_verifies_the_user():
    identity = verify("user-42", IN_AN_HOUR, sign_identity(SECRET, "user-42", IN_AN_HOUR))
    assert identity.user_id == "user-42" and identity.expires == NOW + timedelta(hours=1)


def test_the_signature_is_hex_hmac_sha256_of_user_id_colon_expiry():
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), f"user-42:{IN_AN_HOUR}".encode(), hashlib.sha256).hexdigest()
    assert sign_identity(SECRET, "user-42", IN_AN_HOUR) == expected


@pytest.mark.parametrize("tamper", ["other user", "later expiry", "other secret", "truncated", "not hex"])
def test_a_forged_identity_is_refused(tamper):
    user, expires, signature = "user-42", IN_AN_HOUR, sign_identity(SECRET, "user-42", IN_AN_HOUR)
    if tamper == "other user":
        user = "user-43"
    elif tamper == "later expiry":
        expires += 3600
    elif tamper == "other secret":
        signature = sign_identity("a guessed secret", user, expires)
    elif tamper == "truncated":
        signature = signature[:-2]
    else:
        signature = "z" * 64
    with pytest.raises(WidgetIdentityInvalidError):
        verify(user, expires, signature)


def test_an_expired_identity_is_refused_even_with_a_valid_signature():
    expired = int((NOW - timedelta(seconds=1)).timestamp())
    with pytest.raises(WidgetIdentityExpiredError):
        verify("user-42", expired, sign_identity(SECRET, "user-42", expired))


def test_an_identity_valid_for_longer_than_allowed_is_refused():
    far = int((NOW + DAY + timedelta(minutes=1)).timestamp())
    with pytest.raises(WidgetIdentityInvalidError):
        verify("user-42", far, sign_identity(SECRET, "user-42", far))


@pytest.mark.parametrize("user_id, expires", [("", IN_AN_HOUR), ("x" * 201, IN_AN_HOUR), ("a\nb", IN_AN_HOUR),
                                              (42, IN_AN_HOUR), ("user", "soon"), ("user", True), ("user", -5)])
def test_malformed_identities_are_refused(user_id, expires):
    with pytest.raises(WidgetIdentityInvalidError):
        verify(user_id, expires, "0" * 64)


def test_a_rotated_out_secret_verifies_only_until_its_grace_period_ends():
    old = IdentitySecret("the previous secret", NOW + timedelta(minutes=30))
    secrets = (IdentitySecret(SECRET, None), old)
    signature = sign_identity("the previous secret", "user-42", IN_AN_HOUR)
    assert verify("user-42", IN_AN_HOUR, signature, secrets).user_id == "user-42"
    with pytest.raises(WidgetIdentityInvalidError):
        verify("user-42", IN_AN_HOUR, signature, secrets, now=NOW + timedelta(minutes=31))


def test_rotating_keeps_the_previous_secret_for_the_grace_period_and_drops_older_ones():
    widget = WebWidget.enable(workspace_id=uuid4(), public_key="wk_test", allowed_origins=[],
                              privacy_policy_url=None, now=NOW)
    widget.rotate_secret(uuid4(), "first", DAY, None, NOW)
    assert [(s.secret, s.valid_until) for s in widget.identity_secrets()] == [("first", None)]
    widget.rotate_secret(uuid4(), "second", timedelta(hours=2), None, NOW + DAY)
    assert [(s.secret, s.valid_until) for s in widget.identity_secrets()] == [
        ("second", None), ("first", NOW + DAY + timedelta(hours=2))]
    widget.rotate_secret(uuid4(), "third", timedelta(0), None, NOW + 2 * DAY)
    assert [s.secret for s in widget.identity_secrets()] == ["third"], "no grace: the old secret stops at once"


def test_identity_secrets_are_sealed_like_personal_data():
    assert personal_fields(WebWidget.SecretRotated) == {"secret": "originator_id"}
    assert "secrets" in WebWidget.personal_state


def test_allowed_origins_are_normalised_and_anything_but_scheme_host_port_is_refused():
    assert check_origins(["https://Shop.Example.com/", "http://127.0.0.1:8080"]) == [
        "http://127.0.0.1:8080", "https://shop.example.com"]
    for bad in ("shop.example.com", "https://shop.example.com/path", "javascript:alert(1)", "ftp://x.org", "*"):
        with pytest.raises(WidgetOriginInvalidError):
            check_origins([bad])


def test_the_privacy_policy_url_must_be_http_or_https():
    assert check_privacy_url("https://example.com/privacy") == "https://example.com/privacy"
    assert check_privacy_url("") is None
    for bad in ("javascript:alert(1)", "data:text/html,x", "https://x.org/\"><script>", "/privacy"):
        with pytest.raises(WidgetPrivacyUrlInvalidError):
            check_privacy_url(bad)
