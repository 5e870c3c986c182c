"""The demo workspace: seeded once per data directory so a fresh install has something to log into."""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from adapters.passwords import hash_password
from api.bootstrap import Hub
from domain.application import last_position
from domain.errors import WorkspaceNotFoundError, WorkspaceSlugTakenError

DEMO_CONTACTS = [
    ("Ada Lovelace", "+447911123456", "ada@example.org", "Hi, can I move my Thursday appointment to Friday?"),
    ("Grace Hopper", "+12025550143", "grace@example.org", "Thanks for the reminder, see you at 3pm."),
    ("Alan Turing", "+447911654321", None, "Do you have any physio slots next week?"),
]


@dataclass(frozen=True)
class DemoLogin:
    workspace_id: str
    workspace_slug: str
    email: str
    password: str


def seed_demo(hub: Hub, now: datetime | None = None) -> DemoLogin:
    """Create the demo workspace, an owner and a few contacts, unless this data directory has them."""
    now = now or datetime.now(timezone.utc)
    record = hub.settings.data_dir / "demo-login.json"
    existing = _read(record)
    if existing is not None:
        try:
            hub.app.get_workspace(uuid.UUID(existing.workspace_id))
            return existing
        except WorkspaceNotFoundError:
            pass
    workspace_id = uuid.uuid4()
    slug = "demo"
    try:
        hub.app.create_workspace(workspace_id=workspace_id, name="Demo Clinic", slug=slug, time_zone="Europe/London", now=now)
    except WorkspaceSlugTakenError:  # the database outlived the data directory that knew the login
        slug = f"demo-{secrets.token_hex(3)}"
        hub.app.create_workspace(workspace_id=workspace_id, name="Demo Clinic", slug=slug, time_zone="Europe/London", now=now)
    login = DemoLogin(str(workspace_id), slug, "owner@demo.example", secrets.token_urlsafe(12))
    owner_id = hub.app.add_staff(
        workspace_id=workspace_id, staff_id=uuid.uuid4(), name="Demo Owner", email=login.email, role="owner",
        password_hash=hash_password(login.password), now=now,
    )
    for name, phone, email, message in DEMO_CONTACTS:
        contact_id = hub.app.find_or_create_contact(workspace_id, kind="phone", value=phone, name=name, now=now)
        if email:
            hub.app.rectify_contact(workspace_id, contact_id, {"email": email, "time_zone": "Europe/London"},
                                    owner_id, now)
        hub.app.grant_consent(
            workspace_id, contact_id, channel="sms", purpose="transactional", source="demo seed",
            wording="Appointment reminders by text", actor_id=owner_id, now=now,
        )
        hub.app.receive_message(workspace_id=workspace_id, contact_id=contact_id, channel="sms", body=message, now=now)
    _write(record, login)
    if hub.settings.workers != "off":  # the login works once it is printed, wherever the projections run
        hub.wait_for(last_position.get(), 60)
    return login


def _read(path: Path) -> DemoLogin | None:
    try:
        return DemoLogin(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _write(path: Path, login: DemoLogin) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(asdict(login)))
