"""The v1 message parser: valid messages, clear errors for everything else, fuzzed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling import protocol as p
from signaling.ice import ice_servers, turn_credentials


def test_parses_each_client_message() -> None:
    samples: list[dict[str, Any]] = [
        {"type": "hello", "token": "abc"},
        {"type": "join", "care": True, "claimed_phone": "13800138000"},
        {"type": "presence", "state": "available", "skills": ["care"]},
        {"type": "accept", "call_id": "c1"},
        {"type": "decline", "call_id": "c1"},
        {"type": "sdp", "call_id": "c1", "kind": "offer", "sdp": "v=0\r\n"},
        {"type": "ice", "call_id": "c1", "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"},
        {"type": "chat", "call_id": "c1", "text": "13800138000"},
        {"type": "push_step", "call_id": "c1", "step_id": "s1", "step": "show_id", "params": {"side": "front"}},
        {"type": "step_result", "call_id": "c1", "step_id": "s1", "status": "ok"},
        {"type": "hangup"},
        {"type": "transfer", "call_id": "c1", "to": "supervisor"},
        {"type": "silent_join", "call_id": "c1"},
        {"type": "ping", "v": 1, "ref": "r1"},
    ]
    assert {s["type"] for s in samples} == p.CLIENT_TYPES
    for sample in samples:
        message = p.parse(json.dumps(sample))
        assert message.type == sample["type"]
        assert p.parse(json.dumps(sample).encode()) == message


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\xff\xfe", "bad_json"),
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_message"),
        ('{"type": "launch_missiles"}', "unknown_type"),
        ('{"no": "type"}', "unknown_type"),
        ('{"type": "ping", "v": 2}', "bad_version"),
        ('{"type": "presence", "state": "asleep"}', "invalid"),
        ('{"type": "join", "age": -3}', "invalid"),
        ('{"type": "accept"}', "invalid"),
        ('{"type": "chat", "call_id": "c", "text": ""}', "invalid"),
        ('{"type": "ping", "extra": 1}', "invalid"),
        ("[" * 100_000 + "]" * 100_000, "too_large"),
        ("[" * 30_000 + "]" * 30_000, "bad_json"),
    ],
)
def test_refuses_with_a_code(data: str | bytes, code: str) -> None:
    with pytest.raises(p.ProtocolError) as err:
        p.parse(data)
    assert err.value.code == code
    assert err.value.reason


def test_error_echoes_ref_and_names_the_field() -> None:
    with pytest.raises(p.ProtocolError) as err:
        p.parse('{"type": "sdp", "call_id": "c1", "kind": "pranswer", "sdp": "x", "ref": "m-7"}')
    assert err.value.ref == "m-7"
    assert "kind" in err.value.reason
    reply = json.loads(p.dump(err.value.to_message()))
    assert reply == {"v": 1, "type": "error", "code": "invalid", "reason": err.value.reason, "ref": "m-7"}


def test_size_limit_counts_bytes_not_characters() -> None:
    text = json.dumps({"type": "chat", "call_id": "c", "text": "长" * 1000}, ensure_ascii=False)
    assert len(text) < 1100 < len(text.encode())
    with pytest.raises(p.ProtocolError, match="too_large"):
        p.parse(text, max_bytes=1100)
    assert p.parse(text, max_bytes=4000).type == "chat"


def test_token_bucket_limits_bursts_then_refills() -> None:
    bucket = p.TokenBucket(rate=10, burst=3)
    t0 = bucket._last
    assert [bucket.take(t0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(t0 + 0.15)  # 1.5 tokens refilled
    assert not bucket.take(t0 + 0.15)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_any_bytes_is_a_message_or_a_clear_error(data: bytes) -> None:
    try:
        p.parse(data)
    except p.ProtocolError as exc:
        assert exc.code in {"bad_json", "bad_message", "unknown_type", "bad_version", "invalid", "too_large"}


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
_fields = st.sampled_from(
    ["call_id", "state", "kind", "sdp", "text", "step", "step_id", "status", "to", "care", "age", "token", "v",
     "ref", "params", "skills", "candidate", "sdp_mline_index"]
)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(p.CLIENT_TYPES)), st.dictionaries(_fields, _json, max_size=6))
def test_fuzz_typed_objects(kind: str, fields: dict[str, Any]) -> None:
    data = json.dumps({**fields, "type": kind})
    try:
        message = p.parse(data)
    except p.ProtocolError as exc:
        assert exc.code in {"invalid", "bad_version"}, exc
        assert exc.reason.startswith(kind) or exc.code == "bad_version"
    else:
        assert message.type == kind


def test_turn_credentials_match_coturn_rest_api() -> None:
    # expected password from: printf '1700000600:alice' | openssl dgst -sha1 -hmac north -binary | base64
    assert turn_credentials("north", "alice", 600, now=1_700_000_000) == (
        "1700000600:alice",
        "gthUwOpcRoLI0MMCziCEBOWYnpo=",
    )


def test_ice_servers_turn_only_with_secret() -> None:
    stun = ["stun:stun.example.cn:3478"]
    turn = ["turn:turn.example.cn:3478?transport=udp"]
    assert [s.urls for s in ice_servers(stun, turn, "", "customer:c1", 600)] == [stun]
    servers = ice_servers(stun, turn, "s3cret", "customer:c1", 600, now=100)
    assert servers[1].urls == turn
    assert servers[1].username == "700:customer:c1"
    assert servers[1].credential
