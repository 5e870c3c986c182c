"""Property tests of the sealing mapper, with an in-memory key vault (the port's fake): any event
round-trips exactly, no personal value is readable in the stored bytes, a tampered or moved seal
is refused, and a shredded subject reads back as ERASED."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import StoredEvent
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.codec import EXT_SEALED, MsgspecTranscoder
from adapters.sealing import SealingMapper
from domain.contact import Contact
from domain.conversation import Conversation
from domain.errors import SealBrokenError
from domain.personal import ERASED

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=timezone.utc)


class MemoryVault:
    """Data keys in a dict; shredding forgets one."""

    def __init__(self) -> None:
        self.keys: dict[uuid.UUID, AESGCM] = {}
        self.shredded: set[uuid.UUID] = set()

    def sealer(self, subject_id: uuid.UUID, workspace_id: uuid.UUID) -> AESGCM:
        assert subject_id not in self.shredded
        return self.keys.setdefault(subject_id, AESGCM(AESGCM.generate_key(bit_length=256)))

    def opener(self, subject_id: uuid.UUID) -> AESGCM | None:
        return None if subject_id in self.shredded else self.keys[subject_id]

    def prefetch(self, subjects: dict[uuid.UUID, uuid.UUID]) -> None:
        for subject_id, workspace_id in subjects.items():
            self.sealer(subject_id, workspace_id)

    def shred(self, subject_id: uuid.UUID) -> None:
        self.shredded.add(subject_id)
        self.keys.pop(subject_id, None)


words = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1,
                max_size=60).filter(lambda s: s.strip() != "")
secrets = st.text(alphabet="abcdefghijklmnopqrstuvwxyzÄÖÜßéç0123456789 ", min_size=12, max_size=40).filter(
    lambda s: len(s.strip()) >= 12)
attachments = st.lists(st.fixed_dictionaries({"filename": words, "content_type": st.sampled_from(["image/png", "application/pdf"]),
                                              "url": words}), max_size=3)


def contact_events(name: str, note: str, fields: dict[str, str]) -> list[Any]:
    contact = Contact.create(contact_id=uuid.uuid4(), workspace_id=uuid.uuid4(), name=name, phone=None, email=None,
                             time_zone=None, custom_fields=fields, actor_id=None, now=NOW)
    contact.add_note(uuid.uuid4(), note, None, NOW)
    return contact.collect_events()


def message_events(body: str, files: list[dict[str, str]]) -> list[Any]:
    conversation = Conversation.start(workspace_id=uuid.uuid4(), contact_id=uuid.uuid4(), channel="sms",
                                      thread="default", now=NOW)
    conversation.receive(uuid.uuid4(), body, files, "SM" + uuid.uuid4().hex, NOW)
    return conversation.collect_events()


def stored_and_mapper() -> tuple[SealingMapper, MemoryVault]:
    vault = MemoryVault()
    return SealingMapper(MsgspecTranscoder(), vault), vault  # type: ignore[arg-type]


def sealed_fields(mapper: SealingMapper, stored: StoredEvent) -> dict[str, msgspec.msgpack.Ext]:
    state = mapper.transcoder.decode(stored.state)
    return {k: v for k, v in state.items() if isinstance(v, msgspec.msgpack.Ext) and v.code == EXT_SEALED}


@settings(max_examples=60, deadline=None)
@given(name=secrets, note=secrets, fields=st.dictionaries(words, words, max_size=3), body=secrets, files=attachments)
def test_any_event_round_trips_and_no_personal_value_is_readable_at_rest(name, note, fields, body, files):
    mapper, _ = stored_and_mapper()
    for event in [*contact_events(name, note, fields), *message_events(body, files)]:
        stored = mapper.to_stored_event(event)
        for secret in (name, note, body):
            assert secret.encode() not in bytes(stored.state)
        assert mapper.to_domain_event(stored).__dict__ == event.__dict__


@settings(max_examples=60, deadline=None)
@given(body=secrets, position=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_flipping_any_bit_of_a_seal_is_refused(body, position, bit):
    mapper, _ = stored_and_mapper()
    event = message_events(body, [])[-1]
    stored = mapper.to_stored_event(event)
    state = mapper.transcoder.decode(stored.state)
    seal = state["body"]
    data = bytearray(seal.data)
    index = 16 + position % (len(data) - 16)  # nonce or ciphertext (the first 16 bytes name the subject)
    data[index] ^= 1 << bit
    state["body"] = msgspec.msgpack.Ext(EXT_SEALED, bytes(data))
    tampered = StoredEvent(stored.originator_id, stored.originator_version, stored.topic, mapper.transcoder.encode(state))
    with pytest.raises(SealBrokenError):
        mapper.to_domain_event(tampered)


@settings(max_examples=30, deadline=None)
@given(first=secrets, second=secrets)
def test_a_seal_moved_to_another_event_is_refused(first, second):
    mapper, _ = stored_and_mapper()
    one, other = message_events(first, [])[-1], message_events(second, [])[-1]
    stored_one, stored_other = mapper.to_stored_event(one), mapper.to_stored_event(other)
    state = mapper.transcoder.decode(stored_other.state)
    state["body"] = sealed_fields(mapper, stored_one)["body"]  # the first message's body put into the second
    moved = StoredEvent(stored_other.originator_id, stored_other.originator_version, stored_other.topic,
                        mapper.transcoder.encode(state))
    with pytest.raises(SealBrokenError):
        mapper.to_domain_event(moved)


@settings(max_examples=30, deadline=None)
@given(name=secrets, note=secrets, body=secrets)
def test_after_shredding_personal_fields_read_as_erased_and_the_rest_stays(name, note, body):
    mapper, vault = stored_and_mapper()
    created, noted = contact_events(name, note, {})
    stored = [mapper.to_stored_event(e) for e in (created, noted)]
    vault.shred(created.originator_id)
    read_created, read_noted = (mapper.to_domain_event(s) for s in stored)
    assert read_created.name is ERASED and read_noted.text is ERASED
    assert read_created.originator_id == created.originator_id and read_noted.note_id == noted.note_id
