"""The under-age guard through the API: a workspace turns it on, a contact's date of birth flags them,
and marketing to them is refused with its reason while other messages still go."""

from __future__ import annotations

from datetime import date, datetime, timezone

from tests.e2e.api_support import assert_problem, demo_credentials, demo_login, login, phone_number, unique

CONTACTS = "/api/v1/contacts"
GUARD = "/api/v1/settings/minors"


def years_ago(years: int, days: int = 0) -> str:
    """A birth date, counted on the UTC calendar (the contacts below live in UTC)."""
    today = datetime.now(timezone.utc).date()
    day = today.day if (today.month, today.day) != (2, 29) else 28
    return date.fromordinal(today.replace(year=today.year - years, day=day).toordinal() + days).isoformat()


def test_a_minor_is_flagged_and_refused_marketing_once_the_workspace_turns_the_guard_on(demo_server):
    with demo_login(demo_server) as owner:
        assert owner.ok("GET", GUARD) == {"enabled": False, "minimum_age": 16}
        teen = owner.ok("POST", CONTACTS, {"name": unique("Teen Tamsin"), "phone": phone_number(),
                                           "time_zone": "UTC", "date_of_birth": years_ago(15)})
        assert teen["date_of_birth"] == years_ago(15) and teen["minor"] is False  # the guard is off
        path = f"{CONTACTS}/{teen['contact_id']}"
        owner.ok("POST", f"{path}/consents", {"channel": "sms", "purpose": "marketing", "granted": True,
                                              "source": "web form", "wording": "Send me offers"})
        conversation = owner.ok("POST", f"{path}/conversations", {"channel": "sms"})["conversation_id"]
        reply = f"/api/v1/conversations/{conversation}/reply"
        assert owner.ok("POST", reply, {"body": "Spring offer", "purpose": "marketing"})["status"] == "queued"

        assert owner.ok("PUT", GUARD, {"enabled": True}) == {"enabled": True, "minimum_age": 16}

        assert owner.ok("GET", path)["minor"] is True
        listed = [c for c in owner.ok("GET", CONTACTS, params={"limit": 200})["items"] if c["contact_id"] == teen["contact_id"]]
        assert listed[0]["minor"] is True and listed[0]["date_of_birth"] == years_ago(15)
        refused = owner.ok("POST", reply, {"body": "Summer offer", "purpose": "marketing"})
        assert (refused["status"], refused["reason"]) == ("refused", "under_minimum_age_for_marketing")
        assert owner.ok("POST", reply, {"body": "Your appointment is at 10", "purpose": "transactional"})["status"] == "queued"
        kinds = [m["kind"] for m in owner.messages(conversation)]
        assert kinds.count("refused") == 1

        adult = owner.ok("PATCH", path, {"date_of_birth": years_ago(16)})  # corrected: sixteen today
        assert adult["minor"] is False and adult["date_of_birth"] == years_ago(16)
        assert owner.ok("POST", reply, {"body": "Autumn offer", "purpose": "marketing"})["status"] == "queued"
        assert owner.ok("PATCH", path, {"date_of_birth": years_ago(16, days=1)})["minor"] is True  # tomorrow
        assert owner.ok("PUT", GUARD, {"enabled": True, "minimum_age": 18})["minimum_age"] == 18
        assert owner.ok("PUT", GUARD, {"enabled": False}) == {"enabled": False, "minimum_age": 16}
        assert owner.ok("GET", path)["minor"] is False


def test_bad_dates_of_birth_and_ages_are_refused_and_only_admins_change_the_guard(demo_server):
    with demo_login(demo_server) as owner:
        future = owner.post(CONTACTS, {"name": "Future Fay", "date_of_birth": "2999-01-01"})
        assert assert_problem(future, 422)["code"] == "DateOfBirthInvalidError"
        assert "2999" not in future.text
        assert_problem(owner.post(CONTACTS, {"name": "Nonsense Nia", "date_of_birth": "31/05/2011"}), 422)
        assert_problem(owner.request("PUT", GUARD, json={"enabled": True, "minimum_age": 40}), 422)
        email, password = f"{unique('agent')}@demo.example", "a long enough password"
        owner.ok("POST", "/api/v1/staff", {"name": "Agent", "email": email, "role": "agent", "password": password})
    with login(demo_server.url, demo_credentials(demo_server)["workspace_slug"], email, password) as agent:
        assert agent.ok("GET", GUARD)["enabled"] is False
        assert_problem(agent.request("PUT", GUARD, json={"enabled": True}), 403)
