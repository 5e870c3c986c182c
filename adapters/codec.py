"""A msgspec (MessagePack) transcoder for eventsourcing that round-trips rich Python types exactly."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, Callable
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec
from eventsourcing.persistence import Transcoder

# MessagePack extension codes; stored events depend on them: never renumber, only add.
EXT_UUID = 1
EXT_DECIMAL = 2
EXT_DATETIME = 3
EXT_DATE = 4
EXT_TIME = 5
EXT_TIMEDELTA = 6
EXT_TUPLE = 7
EXT_FROZENSET = 8
EXT_SET = 9
EXT_SEALED = 10  # reserved for adapters.sealing
EXT_ERASED = 11  # reserved for adapters.sealing: an erased value in a snapshot


def _zone(tz: Any) -> str | None:
    key = getattr(tz, "key", None)
    return key if isinstance(key, str) else None


class MsgspecTranscoder(Transcoder):
    """Encodes event state as MessagePack with extension types for UUID, Decimal, dates and sets.

    Datetimes keep their offset and, when they have one, their IANA zone name, so a
    ``datetime`` in ``Europe/London`` decodes as ``Europe/London``, not as UTC.
    """

    def __init__(self) -> None:
        self._pack = msgspec.msgpack.Encoder().encode
        self._unpack = msgspec.msgpack.Decoder(ext_hook=self._from_ext).decode
        self.decoders: dict[int, Callable[[memoryview], Any]] = {
            EXT_UUID: lambda data: UUID(bytes=bytes(data)),
            EXT_DECIMAL: lambda data: Decimal(bytes(data).decode()),
            EXT_DATETIME: self._decode_datetime,
            EXT_DATE: lambda data: date.fromisoformat(bytes(data).decode()),
            EXT_TIME: self._decode_time,
            EXT_TIMEDELTA: self._decode_timedelta,
            EXT_TUPLE: lambda data: tuple(self._unpack(data)),
            EXT_FROZENSET: lambda data: frozenset(self._unpack(data)),
            EXT_SET: lambda data: set(self._unpack(data)),
        }

    def encode(self, obj: Any) -> bytes:
        return self._pack(self.to_wire(obj))

    def decode(self, data: bytes) -> Any:
        return self._unpack(data)

    def to_wire(self, obj: Any) -> Any:
        """Replace values MessagePack cannot carry exactly by extension objects."""
        kind = type(obj)
        if kind is str or kind is int or kind is bool or kind is float or obj is None or kind is bytes:
            return obj
        if kind is dict:
            return {key: self.to_wire(value) for key, value in obj.items()}
        if kind is list:
            return [self.to_wire(value) for value in obj]
        if isinstance(obj, UUID):
            return msgspec.msgpack.Ext(EXT_UUID, obj.bytes)
        if isinstance(obj, datetime):
            return msgspec.msgpack.Ext(EXT_DATETIME, self._pack([obj.isoformat(), _zone(obj.tzinfo)]))
        if isinstance(obj, date):
            return msgspec.msgpack.Ext(EXT_DATE, obj.isoformat().encode())
        if isinstance(obj, time):
            return msgspec.msgpack.Ext(EXT_TIME, self._pack([obj.isoformat(), _zone(obj.tzinfo)]))
        if isinstance(obj, Decimal):
            return msgspec.msgpack.Ext(EXT_DECIMAL, str(obj).encode())
        if isinstance(obj, timedelta):
            return msgspec.msgpack.Ext(EXT_TIMEDELTA, self._pack([obj.days, obj.seconds, obj.microseconds]))
        if isinstance(obj, tuple):
            return msgspec.msgpack.Ext(EXT_TUPLE, self.encode(list(obj)))
        if isinstance(obj, frozenset):
            return msgspec.msgpack.Ext(EXT_FROZENSET, self.encode(list(obj)))
        if isinstance(obj, set):
            return msgspec.msgpack.Ext(EXT_SET, self.encode(list(obj)))
        if isinstance(obj, (bytearray, memoryview)):
            return bytes(obj)
        if isinstance(obj, msgspec.msgpack.Ext):
            return obj
        if isinstance(obj, Enum):
            return self.to_wire(obj.value)
        for base in (str, int, float):
            if isinstance(obj, base):
                return base(obj)
        raise TypeError(f"cannot encode values of type {kind.__name__}")

    def _from_ext(self, code: int, data: memoryview) -> Any:
        decoder = self.decoders.get(code)
        if decoder is None:
            return msgspec.msgpack.Ext(code, bytes(data))
        return decoder(data)

    def _decode_datetime(self, data: memoryview) -> datetime:
        text, zone = self._unpack(data)
        value = datetime.fromisoformat(text)
        if not zone:
            return value
        # The same wall time and fold as encoded, so a time in a DST gap or overlap comes back as it was
        # (astimezone alone would move 02:00 in a spring-forward gap to 03:00: the same instant, not equal).
        for fold in (0, 1):
            local = value.replace(tzinfo=ZoneInfo(zone), fold=fold)
            if local.utcoffset() == value.utcoffset():
                return local
        return value.astimezone(ZoneInfo(zone))

    def _decode_time(self, data: memoryview) -> time:
        text, zone = self._unpack(data)
        value = time.fromisoformat(text)
        return value.replace(tzinfo=ZoneInfo(zone)) if zone else value

    def _decode_timedelta(self, data: memoryview) -> timedelta:
        days, seconds, microseconds = self._unpack(data)
        return timedelta(days=days, seconds=seconds, microseconds=microseconds)

