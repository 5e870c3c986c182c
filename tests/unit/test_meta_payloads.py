"""Parsing Meta's webhook payloads: what each platform's events become, and that anything of the
wrong shape is refused (a 4xx) rather than half-read."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from adapters.meta_payloads import InboundMessage, PayloadInvalidError, ReadUpTo, StatusUpdate, Watermark, parse
from domain.social import Platform
from tests.fake_meta import delivery, dm, read, wa_message, wa_status


@pytest.mark.parametrize("platform", ["messenger", "instagram"])
def test_a_text_message_names_the_account_the_sender_and_the_mid(platform):
    payload = dm(platform, "1001", "2002", "Hello there", mid="m_abc-1")
    payload["entry"][0]["messaging"][0]["timestamp"] = 1700000000123
    [event] = parse(payload)
    assert event == InboundMessage(Platform(platform), "1001", "2002", "m_abc-1", "Hello there", [], None,
                                   datetime.fromtimestamp(1700000000.123, tz=timezone.utc))


def test_images_become_attachments_with_their_url_and_type():
    [event] = parse(dm("messenger", "1001", "2002", images=["https://cdn.example/a.jpg", "https://cdn.example/b.png"]))
    assert event.text == ""
    assert event.attachments == [{"url": "https://cdn.example/a.jpg", "content_type": "image"},
                                 {"url": "https://cdn.example/b.png", "content_type": "image"}]


def test_an_echo_of_our_own_send_is_not_an_inbound_message():
    assert parse(dm("messenger", "1001", "2002", "We sent this", echo=True)) == []


def test_delivery_and_read_receipts_of_messenger_and_instagram():
    [by_mid, by_watermark] = parse(delivery("messenger", "1001", "2002", ["m_1", "m_2"]))
    assert by_mid == StatusUpdate(Platform.MESSENGER, "1001", ["m_1", "m_2"], "delivered")
    assert isinstance(by_watermark, Watermark) and by_watermark.status == "delivered"
    [watermark] = parse(read("messenger", "1001", "2002", watermark=1700000000000))
    assert watermark.status == "read" and watermark.at.timestamp() == 1700000000 and watermark.sender_id == "2002"
    assert parse(read("instagram", "1001", "2002", mid="m_9")) == [ReadUpTo(Platform.INSTAGRAM, "1001", "m_9")]


def test_a_whatsapp_message_carries_the_phone_number_id_the_wa_id_and_the_profile_name():
    payload = wa_message("3003", "447700900123", "Hi", name="Kerry Smith", wamid="wamid.ABC=")
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = "1700000000"
    [event] = parse(payload)
    assert event == InboundMessage(Platform.WHATSAPP, "3003", "447700900123", "wamid.ABC=", "Hi", [], "Kerry Smith",
                                   datetime.fromtimestamp(1700000000, tz=timezone.utc))


def test_a_whatsapp_image_keeps_its_media_id_type_and_caption():
    [event] = parse(wa_message("3003", "447700900123", "my rash", image=("MEDIA123", "image/jpeg")))
    assert event.text == "my rash"
    assert event.attachments == [{"url": None, "content_type": "image/jpeg", "media_id": "MEDIA123"}]


def test_whatsapp_statuses_and_their_error_code():
    assert parse(wa_status("3003", "wamid.X", "read")) == [StatusUpdate(Platform.WHATSAPP, "3003", ["wamid.X"], "read")]
    [failed] = parse(wa_status("3003", "wamid.X", "failed", error_code=131047))
    assert failed.status == "failed" and failed.error_code == 131047


def test_objects_and_events_we_do_not_handle_are_skipped():
    assert parse({"object": "permissions", "entry": []}) == []
    postback = {"object": "page", "entry": [{"id": "1001", "messaging": [
        {"sender": {"id": "2002"}, "recipient": {"id": "1001"}, "postback": {"payload": "GET_STARTED"}}]}]}
    assert parse(postback) == []
    assert parse({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "account_update", "value": {"anything": True}}]}]}) == []


def broken_payloads():
    good = dm("messenger", "1001", "2002", "Hi")
    wa = wa_message("3003", "447700900123", "Hi")
    yield "not an object", ["page"]
    yield "no object", {"entry": []}
    yield "object not a string", {"object": 7, "entry": []}
    yield "entry not a list", {"object": "page", "entry": {}}
    yield "entry item not an object", {"object": "page", "entry": ["x"]}
    yield "page id not numeric", {**good, "entry": [{**good["entry"][0], "id": "abc"}]}
    item = good["entry"][0]["messaging"][0]
    yield "sender missing", {**good, "entry": [{"id": "1001", "messaging": [{**item, "sender": None}]}]}
    yield "mid missing", {**good, "entry": [{"id": "1001", "messaging": [{**item, "message": {"text": "x"}}]}]}
    yield "text not a string", {**good, "entry": [{"id": "1001", "messaging": [
        {**item, "message": {"mid": "m_1", "text": ["x"]}}]}]}
    yield "text too long", {**good, "entry": [{"id": "1001", "messaging": [
        {**item, "message": {"mid": "m_1", "text": "x" * 20_001}}]}]}
    yield "attachment url not http", {**good, "entry": [{"id": "1001", "messaging": [
        {**item, "message": {"mid": "m_1", "attachments": [{"type": "image", "payload": {"url": "javascript:x"}}]}}]}]}
    yield "too many attachments", {**good, "entry": [{"id": "1001", "messaging": [
        {**item, "message": {"mid": "m_1", "attachments": [{"type": "image", "payload": {}}] * 11}}]}]}
    yield "watermark a string", read("messenger", "1001", "2002") | {"entry": [{"id": "1001", "messaging": [
        {"sender": {"id": "2002"}, "read": {"watermark": "soon"}}]}]}
    value = wa["entry"][0]["changes"][0]["value"]
    yield "metadata missing", {**wa, "entry": [{"id": "1", "changes": [
        {"field": "messages", "value": {**value, "metadata": None}}]}]}
    yield "wa_id not digits", {**wa, "entry": [{"id": "1", "changes": [
        {"field": "messages", "value": {**value, "messages": [{**value["messages"][0], "from": "+44 7700"}]}}]}]}
    yield "status error code a string", {**wa, "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "metadata": {"phone_number_id": "3003"},
        "statuses": [{"id": "wamid.X", "status": "failed", "errors": [{"code": "131047"}]}]}}]}]}
    yield "huge entry list", {"object": "page", "entry": [{"id": "1", "messaging": []}] * 1001}


@pytest.mark.parametrize(("why", "payload"), list(broken_payloads()), ids=[w for w, _ in broken_payloads()])
def test_a_payload_of_the_wrong_shape_is_refused(why, payload):
    with pytest.raises(PayloadInvalidError) as refused:
        parse(payload)
    assert "447700900123" not in str(refused.value) and "Hi" not in str(refused.value)


def test_parsing_survives_every_json_value_at_every_place_without_crashing():
    samples = [None, True, 0, -1, 1.5, "", "x" * 300, [], {}, [None], {"id": None}]
    base = json.dumps(wa_message("3003", "447700900123", "Hi", name="K"))
    paths = [p for p in _paths(json.loads(base))]
    for path in paths:
        for sample in samples:
            payload = json.loads(base)
            _set(payload, path, sample)
            try:
                parse(payload)
            except PayloadInvalidError:
                pass


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _paths(inner, (*prefix, index))


def _set(payload, path, sample):
    if not path:
        return
    target = payload
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = sample
