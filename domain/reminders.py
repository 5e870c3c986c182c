"""Reminder and follow-up policies of a workspace, and the pure rules that plan and decide each send.

A policy says when (an offset before the start, after completion, or after a no-show), on which
channel, and with which template. Offsets in whole days keep the local time of day in the
appointment's time zone across a daylight-saving change ("2 days before, at the same hour");
other offsets are exact elapsed time ("2 hours before").
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping
from uuid import NAMESPACE_URL, UUID, uuid5
from zoneinfo import ZoneInfo

from eventsourcing.domain import Aggregate

from domain.consent import SendDecision
from domain.errors import ReminderPolicyInvalidError
from domain.quiet_hours import QuietHours, last_allowed_before, next_allowed, parse_quiet_hours

POLICIES_NAMESPACE = uuid5(NAMESPACE_URL, "https://commhub.invalid/reminder-policies")
MESSAGE_NAMESPACE = uuid5(NAMESPACE_URL, "https://commhub.invalid/reminder-message")
KINDS = ("before", "after_completion", "no_show")
CHANNELS = ("sms", "email")
PURPOSES = ("transactional", "marketing")
PLACEHOLDERS = ("first_name", "service", "start_local", "location", "workspace")
STATUS_FOR_KIND = {"before": ("booked", "confirmed"), "after_completion": ("completed",), "no_show": ("no_show",)}
DAY = 1440
MAX_OFFSET = 60 * DAY
MAX_TEMPLATE = 1000
TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


@dataclass(frozen=True)
class Policy:
    policy_id: UUID
    kind: str
    offset_minutes: int
    channel: str
    template: str
    grace_minutes: int = 60
    purpose: str = "transactional"
    enabled: bool = True

    def as_event(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Policy:
        return cls(**{k: values[k] for k in cls.__dataclass_fields__ if k in values})


def check_policy(policy: Policy) -> Policy:
    if policy.kind not in KINDS:
        raise ReminderPolicyInvalidError(f"kind must be one of {', '.join(KINDS)}")
    if policy.channel not in CHANNELS:
        raise ReminderPolicyInvalidError(f"channel must be one of {', '.join(CHANNELS)}")
    if policy.purpose not in PURPOSES:
        raise ReminderPolicyInvalidError(f"purpose must be one of {', '.join(PURPOSES)}")
    if not 0 <= policy.offset_minutes <= MAX_OFFSET or not 1 <= policy.grace_minutes <= 7 * DAY:
        raise ReminderPolicyInvalidError("offset_minutes must be 0-86400 and grace_minutes 1-10080")
    check_template(policy.template)
    return policy


def check_template(template: str) -> str:
    """Only the known placeholders; a brace meant literally is written ``{{`` or ``}}``."""
    if not isinstance(template, str) or not template.strip() or len(template) > MAX_TEMPLATE:
        raise ReminderPolicyInvalidError(f"template must be 1-{MAX_TEMPLATE} characters")
    for match in TOKEN.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        if match.group(1) not in PLACEHOLDERS:
            raise ReminderPolicyInvalidError(
                f"template placeholders must be one of {', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
    return template


def render(template: str, values: Mapping[str, str]) -> str:
    """Substitute placeholders as plain text: no attribute access, no format specs, no re-expansion."""
    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        return values.get(match.group(1) or "", "")

    return TOKEN.sub(substitute, check_template(template))


def shift(instant: datetime, minutes: int, zone: str) -> datetime:
    """``instant`` moved by ``minutes``: whole days on the local calendar of ``zone``, else exact time."""
    if minutes % DAY:
        return (instant + timedelta(minutes=minutes)).astimezone(timezone.utc)
    tz = ZoneInfo(zone)
    local = instant.astimezone(tz).replace(tzinfo=None) + timedelta(days=minutes // DAY)
    return local.replace(tzinfo=tz).astimezone(timezone.utc)


def planned_at(policy: Policy, *, starts_at: datetime, time_zone: str, finished_at: datetime | None,
               status: str) -> datetime | None:
    """When this policy's message for this appointment is due, or None when the policy does not apply."""
    if not policy.enabled:
        return None
    if policy.kind == "before":
        return shift(starts_at, -policy.offset_minutes, time_zone) if status in STATUS_FOR_KIND["before"] else None
    if status not in STATUS_FOR_KIND[policy.kind] or finished_at is None:
        return None
    return shift(finished_at, policy.offset_minutes, time_zone)


def job_key(appointment_id: UUID, policy_id: UUID, planned: datetime) -> str:
    return f"{appointment_id}/{policy_id}/{planned.astimezone(timezone.utc).isoformat()}"


def reminder_message_id(key: str) -> UUID:
    """The outbound message of a reminder has an id derived from its job: a retry cannot queue a second one."""
    return uuid5(MESSAGE_NAMESPACE, key)


@dataclass(frozen=True)
class Decision:
    action: str  # send, skip, defer, or done (already sent or skipped before)
    reason: str | None = None
    until: datetime | None = None


def decide(
    *, policy: Policy | None, planned: datetime, current_plan: datetime | None, status: str, starts_at: datetime,
    send_after: datetime, now: datetime, consent: SendDecision, quiet_until: datetime, already: str | None,
) -> Decision:
    """Whether a due reminder goes now. Order matters: a cancelled or moved appointment is never
    reminded, a reminder too late is skipped once (not sent late), consent is asked last."""
    if already is not None:
        return Decision("done", already)
    if policy is None or current_plan is None:
        return Decision("skip", "cancelled" if status == "cancelled" else "not_applicable")
    if current_plan != planned:
        return Decision("skip", "rescheduled")
    late = now > send_after + timedelta(minutes=policy.grace_minutes)
    if late or (policy.kind == "before" and now >= starts_at):
        return Decision("skip", "too_late")
    if not consent.allowed:
        return Decision("skip", str(consent.reason))
    if quiet_until > now:
        if policy.kind == "before" and quiet_until >= starts_at:
            return Decision("skip", "quiet_hours")
        return Decision("defer", "quiet_hours", quiet_until)
    return Decision("send")


class ReminderPolicies(Aggregate):
    """The reminder policies and quiet hours of one workspace (id derived from the workspace's)."""

    class Created(Aggregate.Created):
        workspace_id: UUID

    class PolicySaved(Aggregate.Event):
        workspace_id: UUID
        policy: dict[str, Any]

        def apply(self, book: ReminderPolicies) -> None:
            book.policies[str(self.policy["policy_id"])] = dict(self.policy)

    class PolicyDeleted(Aggregate.Event):
        workspace_id: UUID
        policy_id: UUID

        def apply(self, book: ReminderPolicies) -> None:
            book.policies.pop(str(self.policy_id), None)

    class QuietHoursSet(Aggregate.Event):
        workspace_id: UUID
        start: str | None
        end: str | None

        def apply(self, book: ReminderPolicies) -> None:
            book.quiet_start, book.quiet_end = self.start, self.end

    def __init__(self, workspace_id: UUID) -> None:
        self.workspace_id = workspace_id
        self.policies: dict[str, dict[str, Any]] = {}
        self.quiet_start: str | None = None
        self.quiet_end: str | None = None

    @staticmethod
    def id_for(workspace_id: UUID) -> UUID:
        return uuid5(POLICIES_NAMESPACE, str(workspace_id))

    @classmethod
    def open(cls, workspace_id: UUID, now: datetime) -> ReminderPolicies:
        return cls._create(cls.Created, id=cls.id_for(workspace_id), workspace_id=workspace_id, timestamp=now)

    def save_policy(self, policy: Policy, now: datetime) -> None:
        values = check_policy(policy).as_event()
        if self.policies.get(str(policy.policy_id)) != values:
            self.trigger_event(self.PolicySaved, workspace_id=self.workspace_id, policy=values, timestamp=now)

    def delete_policy(self, policy_id: UUID, now: datetime) -> None:
        if str(policy_id) in self.policies:
            self.trigger_event(self.PolicyDeleted, workspace_id=self.workspace_id, policy_id=policy_id, timestamp=now)

    def set_quiet_hours(self, start: str | None, end: str | None, now: datetime) -> None:
        try:
            parse_quiet_hours(start, end)
        except ValueError:
            raise ReminderPolicyInvalidError("quiet hours need a start and an end as HH:MM, or neither") from None
        if (start, end) != (self.quiet_start, self.quiet_end):
            self.trigger_event(self.QuietHoursSet, workspace_id=self.workspace_id, start=start or None,
                               end=end or None, timestamp=now)

    def policy(self, policy_id: UUID) -> Policy | None:
        values = self.policies.get(str(policy_id))
        return Policy.of(values) if values is not None else None

    def all(self) -> list[Policy]:
        return [Policy.of(v) for v in self.policies.values()]

    @property
    def quiet_hours(self) -> QuietHours | None:
        return parse_quiet_hours(self.quiet_start, self.quiet_end)


def send_time(policy: Policy, planned: datetime, *, starts_at: datetime, time_zone: str,
              quiet: QuietHours | None) -> datetime:
    """The planned instant moved out of quiet hours: later, or, when later would reach the
    appointment itself, earlier (the evening before rather than not at all)."""
    later = next_allowed(planned, time_zone, quiet)
    if policy.kind == "before" and later >= starts_at:
        return last_allowed_before(planned, time_zone, quiet)
    return later


def plan(policies: list[Policy], *, starts_at: datetime, time_zone: str, finished_at: datetime | None, status: str,
         quiet: QuietHours | None, since: datetime) -> list[tuple[Policy, datetime, datetime]]:
    """(policy, planned instant, send-after instant) for every message still worth sending after ``since``."""
    jobs = []
    for policy in policies:
        planned = planned_at(policy, starts_at=starts_at, time_zone=time_zone, finished_at=finished_at, status=status)
        if planned is None:
            continue
        after = send_time(policy, planned, starts_at=starts_at, time_zone=time_zone, quiet=quiet)
        if after + timedelta(minutes=policy.grace_minutes) > since and (policy.kind != "before" or starts_at > since):
            jobs.append((policy, planned, after))
    return jobs
