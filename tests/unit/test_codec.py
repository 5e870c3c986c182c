"""The msgspec transcoder round-trips every value an event may carry, exactly."""

from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.codec import MsgspecTranscoder

ZONES = ["UTC", "Europe/London", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | st.uuids()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.dates()
    | st.timedeltas()
    | st.datetimes(timezones=st.sampled_from([ZoneInfo(z) for z in ZONES]) | st.just(timezone.utc))
    | st.datetimes()
    | st.times()
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.tuples(children, children)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def same(a, b):
    """Equal, of the same type, and for datetimes in the same zone."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            same(x, y)
    elif isinstance(a, datetime):
        assert a == b and a.utcoffset() == b.utcoffset() and str(a.tzinfo) == str(b.tzinfo)
    else:
        assert a == b


@given(values)
def test_any_event_state_round_trips_exactly(value):
    transcoder = MsgspecTranscoder()
    same(transcoder.decode(transcoder.encode({"field": value})), {"field": value})


def test_datetime_keeps_its_zone_across_daylight_saving():
    transcoder = MsgspecTranscoder()
    before = datetime(2026, 3, 29, 0, 30, tzinfo=ZoneInfo("Europe/London"))
    after = datetime(2026, 3, 29, 2, 30, tzinfo=ZoneInfo("Europe/London"))
    decoded = transcoder.decode(transcoder.encode([before, after]))
    assert [d.utcoffset() for d in decoded] == [timedelta(0), timedelta(hours=1)]
    assert decoded[0].tzinfo == ZoneInfo("Europe/London")


def test_uuid_and_decimal_decode_as_their_own_types():
    transcoder = MsgspecTranscoder()
    state = {"id": UUID(int=7), "amount": Decimal("12.50"), "at": time(9, 30), "day": date(2026, 1, 2)}
    decoded = transcoder.decode(transcoder.encode(state))
    assert decoded == state
    assert isinstance(decoded["id"], UUID) and str(decoded["amount"]) == "12.50"


def test_unknown_types_are_refused_with_a_clear_error():
    with pytest.raises(TypeError, match="cannot encode values of type object"):
        MsgspecTranscoder().encode({"x": object()})
