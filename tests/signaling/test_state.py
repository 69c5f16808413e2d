"""Routing's records: a call's status is an enum whose stored values stay the plain strings."""

from __future__ import annotations

import json

from signaling.state import CallRecord, CallStatus


def test_call_status_is_stored_as_its_plain_string() -> None:
    call = CallRecord(call_id="c1", lane="general", status=CallStatus.IN_CALL)
    assert json.loads(call.model_dump_json())["status"] == "in_call"
    back = CallRecord.model_validate_json(call.model_dump_json())
    assert back.status is CallStatus.IN_CALL
    assert CallRecord.model_validate({"call_id": "c2", "lane": "care"}).status is CallStatus.QUEUED
