"""A CalDAV client for staff calendars, over httpx: check a collection is a calendar we may write to,
create or update one event with conditional requests, delete it.

Create is ``PUT`` with ``If-None-Match: *``, update ``PUT`` with ``If-Match: <etag>``. A 412 means the
calendar's copy is not what we last wrote (someone edited it, or it already exists): we read it
again and write our properties over *that* copy (keeping what the calendar added), with its ETag —
never blind. URLs, usernames and passwords are never logged or put in an error message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from xml.etree import ElementTree

import httpx

from adapters import ics
from adapters.destinations import DestinationRefusedError
from domain.calendar_sync import CalendarEvent

RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
CONFLICT_ROUNDS = 3
CALENDAR_TYPE = "{urn:ietf:params:xml:ns:caldav}calendar"
PROPFIND = ('<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/>'
            '<d:current-user-privilege-set/></d:prop></d:propfind>')
ICS = "text/calendar; charset=utf-8"


@dataclass(frozen=True)
class CaldavAccount:
    collection_url: str  # ends with "/"
    username: str
    password: str = field(repr=False)

    @property
    def auth(self) -> httpx.BasicAuth:
        return httpx.BasicAuth(self.username, self.password)

    def url(self, name: str) -> str:
        return f"{self.collection_url}{name}.ics"


class CalendarCheckError(ValueError):
    """The collection cannot be used: ``reason`` says why (destination_refused, unreachable, unauthorised,
    not_found, not_a_calendar)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def check_calendar(client: httpx.Client, account: CaldavAccount) -> None:
    """PROPFIND the collection (depth 0): it must answer, accept the login and be a calendar."""
    try:
        answer = client.request("PROPFIND", account.collection_url, auth=account.auth, content=PROPFIND,
                                headers={"Depth": "0", "Content-Type": "application/xml; charset=utf-8"})
    except DestinationRefusedError:
        raise CalendarCheckError("destination_refused", "the calendar's host is a private, loopback or link-local"
                                 " address, which calendars may not reach (COMMHUB_CALDAV_ALLOW_PRIVATE=on allows"
                                 " it)") from None
    except httpx.HTTPError as error:
        raise CalendarCheckError("unreachable", f"the calendar server did not answer ({type(error).__name__})") \
            from None
    if answer.status_code in (401, 403):
        raise CalendarCheckError("unauthorised", "the calendar server refused this username and password")
    if answer.status_code in (404, 410):
        raise CalendarCheckError("not_found", "there is no collection at this URL")
    if answer.status_code != 207:
        raise CalendarCheckError("not_a_calendar", f"the URL answered HTTP {answer.status_code} to PROPFIND, not a"
                                                   " CalDAV multistatus")
    try:
        types = {element.tag for element in ElementTree.fromstring(answer.content).iter()
                 if element.tag.startswith("{urn:ietf:params:xml:ns:caldav}") or element.tag == "{DAV:}collection"}
    except ElementTree.ParseError:
        raise CalendarCheckError("not_a_calendar", "the URL did not answer PROPFIND with XML") from None
    if CALENDAR_TYPE not in types:
        raise CalendarCheckError("not_a_calendar", "the collection at this URL is not a calendar; use the URL of"
                                                   " one calendar (ending in /)")


@dataclass
class Outcome:
    """How one push ended. ``http_status`` None: no answer at all."""

    http_status: int | None
    etag: str | None = None
    conflicts: int = 0
    retry_after: float | None = None

    @property
    def done(self) -> bool:
        return self.http_status is not None and (200 <= self.http_status < 300)

    @property
    def retryable(self) -> bool:
        return self.http_status is None or self.http_status in RETRYABLE or self.http_status == 412


def put_event(client: httpx.Client, account: CaldavAccount, name: str, event: CalendarEvent, etag: str | None,
              now: datetime) -> Outcome:
    """Create (no ETag known) or update (``If-Match``) the event; on 412 merge into the calendar's copy."""
    url, body, conflicts = account.url(name), ics.calendar_object(event, now), 0
    condition = {"If-Match": etag} if etag else {"If-None-Match": "*"}
    try:
        for _ in range(CONFLICT_ROUNDS + 1):
            answer = client.put(url, content=body, auth=account.auth, headers={"Content-Type": ICS, **condition})
            if answer.status_code != 412:
                outcome = _outcome(answer, conflicts)
                if outcome.done and outcome.etag is None:  # the server rewrote our body: learn its ETag
                    outcome.etag = client.head(url, auth=account.auth).headers.get("ETag")
                return outcome
            conflicts += 1
            current = client.get(url, auth=account.auth)
            if current.status_code == 404:  # deleted in the calendar since: create it again
                body, condition = ics.calendar_object(event, now), {"If-None-Match": "*"}
            elif current.status_code == 200 and current.headers.get("ETag"):
                body = ics.merged_object(current.content, event, now)
                condition = {"If-Match": current.headers["ETag"]}
            else:
                return _outcome(current, conflicts)
    except httpx.HTTPError:
        return Outcome(None, conflicts=conflicts)
    return Outcome(412, conflicts=conflicts)  # changed under us every time: try again later


def delete_event(client: httpx.Client, account: CaldavAccount, name: str, etag: str | None) -> Outcome:
    """Delete the event (``If-Match`` when known). Already gone counts as done. A 412 (edited in the
    calendar since) is read again and deleted at its new ETag: a cancelled appointment must not stay."""
    url, conflicts = account.url(name), 0
    condition = {"If-Match": etag} if etag else {}
    try:
        for _ in range(CONFLICT_ROUNDS + 1):
            answer = client.delete(url, auth=account.auth, headers=condition)
            if answer.status_code in (404, 410):
                return Outcome(204, conflicts=conflicts)
            if answer.status_code != 412:
                return _outcome(answer, conflicts)
            conflicts += 1
            current = client.head(url, auth=account.auth)
            if current.status_code == 404:
                return Outcome(204, conflicts=conflicts)
            condition = {"If-Match": current.headers["ETag"]} if current.headers.get("ETag") else {}
    except httpx.HTTPError:
        return Outcome(None, conflicts=conflicts)
    return Outcome(412, conflicts=conflicts)


def _outcome(answer: httpx.Response, conflicts: int) -> Outcome:
    return Outcome(answer.status_code, answer.headers.get("ETag"), conflicts, _retry_after(answer))


def _retry_after(answer: httpx.Response) -> float | None:
    value = answer.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(parsedate_to_datetime(value).tzinfo))
                   .total_seconds())
    except (TypeError, ValueError, IndexError):
        return None
