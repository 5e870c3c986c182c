"""Names Messenger and Instagram contacts from their Meta profiles.

Claims due rows of ``commhub_meta_profile_lookups`` with SKIP LOCKED and a lease, checks the contact
still has its placeholder name (an agent's name, an erasure, a merge or a restriction ends the row
without asking Meta anything), reads the PSID/IGSID from the contact's sealed identity event, and
asks the Graph API with the page's token — Messenger ``GET /{psid}?fields=first_name,last_name``,
Instagram ``GET /{igsid}?fields=name,username`` — then names the contact (a ``Rectified`` event with
no actor) unless someone named it meanwhile. Throttling, 5xx and network trouble are retried with
backoff; any other refusal ends the row (``outcome`` holds the Graph code, never Meta's text). Nothing
personal is logged: contact ids, platforms and codes only.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta, timezone
from typing import Any, Callable
from uuid import UUID

import httpx

from adapters.meta_accounts import MetaAccounts
from adapters.meta_graph import GRAPH_API, THROTTLING
from adapters.polling import PollingWorker
from adapters.postgres import Database
from domain.application import CommHub
from domain.social import ACCOUNT_ID, Platform

log = logging.getLogger(__name__)

FIELDS = {Platform.MESSENGER: "first_name,last_name", Platform.INSTAGRAM: "name,username"}
MAX_NAME = 200
CLAIM = (
    "UPDATE commhub_meta_profile_lookups SET attempts = attempts + 1, due_at = %(lease)s"
    " WHERE (contact_id, platform, account_id) IN (SELECT contact_id, platform, account_id"
    " FROM commhub_meta_profile_lookups WHERE state = 'pending' AND due_at <= %(now)s ORDER BY due_at"
    " LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
    " RETURNING contact_id, platform, account_id, workspace_id, attempts"
)


def profile_name(platform: Platform, body: Any) -> str | None:
    """The name a Graph profile answer gives (Messenger: first and last name; Instagram: the name,
    else the username), trimmed to what a contact name may hold; None when it gives none."""
    if not isinstance(body, dict):
        return None

    def text(key: str) -> str:
        value = body.get(key)
        return " ".join(value.split()) if isinstance(value, str) else ""

    if platform is Platform.MESSENGER:
        name = " ".join(part for part in (text("first_name"), text("last_name")) if part)
    else:
        name = text("name") or text("username")
    name = "".join(c for c in name if c.isprintable())[:MAX_NAME].strip()
    return name or None


class MetaProfileWorker(PollingWorker):
    name = "meta-profiles"

    def __init__(
        self, app: CommHub, database: Database, accounts: MetaAccounts, *, graph_url: str = GRAPH_API,
        timeout: float = 10.0, max_attempts: int = 6, base_delay: float = 30.0, poll_seconds: float = 5.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__()
        self.app = app
        self.database = database
        self.accounts = accounts
        self.graph_url = graph_url.rstrip("/")
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.poll_seconds = poll_seconds
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    def run_once(self, limit: int = 20) -> int:
        """Look up what is due now; returns how many rows were claimed."""
        now = self.clock()
        # The lease outlasts a batch of slow answers (were it to run out, another worker would look a
        # row up again: harmless, the rename checks the placeholder name, but counted twice).
        lease = timedelta(seconds=max(60.0, 2 * self.timeout * limit))
        with self.database.connection() as conn:
            rows = conn.execute(CLAIM, {"now": now, "lease": now + lease, "limit": limit}).fetchall()
        if rows:
            with httpx.Client(timeout=self.timeout, follow_redirects=False, trust_env=False) as client:
                for contact_id, platform, account_id, workspace_id, attempts in rows:
                    try:
                        self._look_up(client, contact_id, platform, account_id, workspace_id, attempts)
                    except Exception as error:  # one row's trouble (the store, a bad row) neither stops the
                        # batch nor retries it for ever; the type only: the message may hold personal data
                        self._retry_or_fail(contact_id, platform, account_id, attempts,
                                            f"error {type(error).__name__}")
        return len(rows)

    def _look_up(self, client: httpx.Client, contact_id: UUID, platform_name: str, account_id: str,
                 workspace_id: UUID, attempts: int) -> None:
        platform = Platform(platform_name)
        key = (contact_id, platform_name, account_id)
        sender_id = self.app.profile_lookup(workspace_id, contact_id, platform, account_id)
        if sender_id is None:
            return self._finish(*key, "not_needed")
        if not ACCOUNT_ID.fullmatch(sender_id):  # Meta's ids are digits; anything else could name another
            return self._finish(*key, "bad_id", state="failed")  # Graph object ("me", "..") for the token
        token = self.accounts.token(workspace_id, platform.value, account_id)
        if token is None:
            return self._finish(*key, "not_connected")
        try:
            answer = client.get(f"{self.graph_url}/{sender_id}",
                                params={"fields": FIELDS[platform]}, headers={"Authorization": f"Bearer {token}"})
            body = answer.json() if answer.headers.get("content-type", "").startswith(
                ("application/json", "text/javascript")) else None
        except (httpx.HTTPError, ValueError) as error:
            return self._retry_or_fail(*key, attempts, type(error).__name__)
        if answer.status_code == 200:
            name = profile_name(platform, body)
            if name is None:
                return self._finish(*key, "no_name")
            named = self.app.name_from_profile(workspace_id, contact_id, platform, name, self.clock())
            return self._finish(*key, "named" if named else "not_needed")
        error = body.get("error") if isinstance(body, dict) else None
        raw = error.get("code") if isinstance(error, dict) else None
        code = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
        outcome = f"http_{answer.status_code}" + (f" meta {code}" if code is not None else "")
        if answer.status_code == 429 or answer.status_code >= 500 or code in THROTTLING:
            return self._retry_or_fail(*key, attempts, outcome)
        self._finish(*key, outcome, state="failed")

    def _retry_or_fail(self, contact_id: UUID, platform: str, account_id: str, attempts: int,
                       outcome: str) -> None:
        if attempts >= self.max_attempts:
            return self._finish(contact_id, platform, account_id, outcome, state="failed")
        delay = self.base_delay * 2 ** (attempts - 1) * random.uniform(0.5, 1.5)
        log.warning("meta profile lookup failed; retrying", extra={
            "contact_id": str(contact_id), "platform": platform, "outcome": outcome})
        with self.database.connection() as conn:
            conn.execute("UPDATE commhub_meta_profile_lookups SET due_at = %s, outcome = %s"
                         " WHERE contact_id = %s AND platform = %s AND account_id = %s AND state = 'pending'",
                         (self.clock() + timedelta(seconds=delay), outcome, contact_id, platform, account_id))

    def _finish(self, contact_id: UUID, platform: str, account_id: str, outcome: str,
                state: str = "done") -> None:
        if state == "failed":
            log.warning("meta profile lookup gave up", extra={
                "contact_id": str(contact_id), "platform": platform, "outcome": outcome})
        with self.database.connection() as conn:
            conn.execute("UPDATE commhub_meta_profile_lookups SET state = %s, outcome = %s, finished_at = %s"
                         " WHERE contact_id = %s AND platform = %s AND account_id = %s AND state = 'pending'",
                         (state, outcome, self.clock(), contact_id, platform, account_id))
