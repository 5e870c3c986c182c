"""Fuzzing the Meta webhook with correctly signed deliveries (the generic schema fuzzer cannot sign):
any JSON, and documented payloads with any value put anywhere, get a 2xx or a 4xx problem, never a 5xx."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.meta_channel.conftest import connect, social_id, wa_id
from tests.fake_meta import delivery, dm, read, wa_message, wa_status

PROBLEM = "application/problem+json"
scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=40)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12),
                                                                                           inner, max_size=4),
                      max_leaves=12)


def paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from paths(inner, (*prefix, index))


def replaced(payload, path, value):
    if not path:
        return value
    copy = json.loads(json.dumps(payload))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


def check(answer) -> None:
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        assert answer.headers["content-type"].startswith(PROBLEM)


def test_signed_deliveries_of_any_shape_never_get_a_server_error(meta_server, owner, fake_meta):
    page, number = connect(owner, fake_meta, "messenger"), connect(owner, fake_meta, "whatsapp")
    documented = [dm("messenger", page, social_id(), "hi", images=["https://cdn.example/x.jpg"]),
                  read("messenger", page, social_id()), delivery("messenger", page, social_id(), ["m_1"]),
                  wa_message(number, wa_id(), "hi", name="A"), wa_message(number, wa_id(), image=("M1", "image/png")),
                  wa_status(number, "wamid.X", "failed", error_code=131026)]
    places = [(payload, path) for payload in documented for path in paths(payload)]

    @given(place=st.sampled_from(places), value=values)
    @settings(max_examples=80, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def mutated(place, value) -> None:
        payload, path = place
        check(fake_meta.deliver(meta_server.url, replaced(payload, path, value)))

    @given(value=values)
    @settings(max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    def anything(value) -> None:
        check(fake_meta.deliver(meta_server.url, value))

    mutated()
    anything()
