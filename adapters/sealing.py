"""A persistence mapper that seals each event's personal fields under its data subject's key.

A sealed field is stored as a MessagePack extension holding the subject id, a random nonce
and the AES-256-GCM ciphertext; the associated data binds it to its event (originator id,
version, topic) and field, so it cannot be moved elsewhere. After a subject is erased their
fields read back as ``domain.personal.ERASED``.
"""

from __future__ import annotations

import os
from typing import Any, Mapping
from uuid import UUID

import msgspec
from cryptography.exceptions import InvalidTag
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent
from eventsourcing.utils import get_topic, resolve_topic

from adapters.codec import EXT_ERASED, EXT_SEALED, MsgspecTranscoder
from adapters.key_vault import KeyVault
from domain.errors import SealBrokenError
from domain.personal import ERASED, SUBJECT, personal_fields, personal_state

SNAPSHOT_TOPIC = get_topic(Snapshot)


def associated_data(originator_id: UUID, version: int, topic: str, field: str) -> bytes:
    return b"commhub/seal/v1|%s|%d|%s|%s" % (originator_id.bytes, version, topic.encode(), field.encode())


class SealingMapper(Mapper):
    """Seals declared personal fields (and personal aggregate state in snapshots) per subject."""

    def __init__(self, transcoder: MsgspecTranscoder, vault: KeyVault) -> None:
        super().__init__(transcoder=transcoder)
        self.transcoder: MsgspecTranscoder = transcoder
        self.vault = vault
        self._plans: dict[str, Mapping[str, str]] = {}

    # Writing -------------------------------------------------------------------------------

    def prepare(self, events: list[Any]) -> None:
        """Fetch or create, in one round trip, the keys every event of a save will be sealed with."""
        subjects: dict[UUID, UUID] = {}
        for event in events:
            plan = self._plan(get_topic(type(event)), type(event))
            state = vars(event)
            workspace_id = state.get("workspace_id", event.originator_id)
            for subject_attr in plan.values():
                subject_id = event.originator_id if subject_attr == SUBJECT else state[subject_attr]
                subjects.setdefault(subject_id, workspace_id)
        if len(subjects) > 1:
            self.vault.prefetch(subjects)

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        topic = get_topic(type(domain_event))
        state = dict(vars(domain_event))
        originator_id = state.pop("originator_id")
        originator_version = state.pop("originator_version")
        class_version = getattr(type(domain_event), "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
        if topic == SNAPSHOT_TOPIC:
            state["state"] = self._seal_snapshot(state, originator_id, originator_version)
        else:
            workspace_id = state.get("workspace_id", originator_id)
            for field, subject_attr in self._plan(topic, type(domain_event)).items():
                subject_id = originator_id if subject_attr == SUBJECT else state[subject_attr]
                state[field] = self._seal(
                    state[field], subject_id, workspace_id, originator_id, originator_version, topic, field
                )
        return StoredEvent(
            originator_id=originator_id,
            originator_version=originator_version,
            topic=topic,
            state=self.transcoder.encode(state),
        )

    def _seal_snapshot(self, state: dict[str, Any], originator_id: UUID, version: int) -> dict[str, Any]:
        aggregate_state = dict(state["state"])
        aggregate_class = resolve_topic(state["topic"])
        subject_attr = getattr(aggregate_class, "personal_subject", None)
        subject_id = aggregate_state[subject_attr] if subject_attr else originator_id
        workspace_id = aggregate_state.get("workspace_id", originator_id)
        for field in personal_state(aggregate_class):
            if field not in aggregate_state:
                continue
            if aggregate_state[field] is ERASED:  # a snapshot taken after erasure keeps the marker
                aggregate_state[field] = msgspec.msgpack.Ext(EXT_ERASED, b"")
                continue
            aggregate_state[field] = self._seal(
                aggregate_state[field], subject_id, workspace_id, originator_id, version, SNAPSHOT_TOPIC, field
            )
        return aggregate_state

    def _seal(
        self, value: Any, subject_id: UUID, workspace_id: UUID, originator_id: UUID, version: int, topic: str, field: str
    ) -> msgspec.msgpack.Ext:
        if value is ERASED:
            raise SealBrokenError("an erased value cannot be stored again")
        aead = self.vault.sealer(subject_id, workspace_id)
        nonce = os.urandom(12)
        plaintext = self.transcoder.encode(value)
        ciphertext = aead.encrypt(nonce, plaintext, associated_data(originator_id, version, topic, field))
        return msgspec.msgpack.Ext(EXT_SEALED, subject_id.bytes + nonce + ciphertext)

    # Reading -------------------------------------------------------------------------------

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        cls = resolve_topic(stored_event.topic)
        try:
            state: dict[str, Any] = self.transcoder.decode(stored_event.state)
        except Exception as error:
            raise MapperDeserialisationError(
                f"failed to decode stored event {stored_event.originator_id} v{stored_event.originator_version}"
            ) from error
        originator_id = stored_event.originator_id
        if not isinstance(originator_id, UUID):
            originator_id = UUID(str(originator_id))
        version = stored_event.originator_version
        if stored_event.topic == SNAPSHOT_TOPIC:
            inner = state["state"]
            for field, value in inner.items():
                inner[field] = self._open(value, originator_id, version, SNAPSHOT_TOPIC, field)
        else:
            for field in self._plan(stored_event.topic, cls):
                if field in state:
                    state[field] = self._open(state[field], originator_id, version, stored_event.topic, field)
        state["originator_id"] = originator_id
        state["originator_version"] = version
        class_version = getattr(cls, "class_version", 1)
        from_version = state.pop("class_version", 1)
        while from_version < class_version:
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(state)
            from_version += 1
        domain_event = object.__new__(cls)
        object.__setattr__(domain_event, "__dict__", state)
        return domain_event

    def _open(self, value: Any, originator_id: UUID, version: int, topic: str, field: str) -> Any:
        if not isinstance(value, msgspec.msgpack.Ext):
            return value
        if value.code == EXT_ERASED:
            return ERASED
        if value.code != EXT_SEALED:
            return value
        data = value.data
        subject_id = UUID(bytes=bytes(data[:16]))
        aead = self.vault.opener(subject_id)
        if aead is None:
            return ERASED
        try:
            plaintext = aead.decrypt(bytes(data[16:28]), bytes(data[28:]), associated_data(originator_id, version, topic, field))
        except InvalidTag:
            raise SealBrokenError(
                f"sealed field {field!r} of event {originator_id} v{version} failed authentication"
            ) from None
        return self.transcoder.decode(plaintext)

    def _plan(self, topic: str, cls: type) -> Mapping[str, str]:
        plan = self._plans.get(topic)
        if plan is None:
            plan = self._plans[topic] = dict(personal_fields(cls))
        return plan
