"""Hostile input, generated: HTTP API bodies from /api/openapi.json (schemathesis), signaling frames on
a live socket, SDP relayed byte for byte, uploaded images (corrupt, zero bytes, decompression bombs)
and audit bundles.  Every input gets a clear answer, the server never answers 500 nor dies, and
nothing is written half.  (The parser-level fuzzing lives in tests/signaling/test_protocol.py.)"""

from __future__ import annotations

import asyncio
import copy
import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from counter.audit.verify import verify_bundle
from identity.images import MAX_SIDE, ImageError, as_bgr, declared_size
from signaling import protocol as p
from signaling.client import SignalingClient
from tests.hardening.nodes import Node

schemathesis = pytest.importorskip("schemathesis")

RULES_OFF = {f"COUNTER_RATELIMIT_{r}": "off" for r in ("LOGIN", "JOIN", "WS", "IDENTITY", "VERIFY", "API")}
FUZZ = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One ``counter serve`` (SQLite) for the whole module; rate limits off (the fuzzer is one address)."""
    tmp = tmp_path_factory.mktemp("fuzz")
    server = Node("fuzz", tmp, "", **RULES_OFF)
    asyncio.run(server.start())
    yield server
    server.stop()
    log = server.log.read_text(errors="replace")
    assert "unhandled error" not in log, log[-3000:]


def _staff(url: str, user: str, password: str) -> tuple[requests.Session, dict[str, str]]:
    http = requests.Session()
    resp = http.post(url + "/api/auth/login", json={"username": user, "password": password}, timeout=10)
    assert resp.status_code == 200, resp.text
    return http, {"X-CSRF-Token": resp.json()["csrf_token"]}


def _clear(resp: requests.Response) -> None:
    assert resp.status_code < 500 or resp.status_code == 503, (resp.status_code, resp.text[:300])
    if resp.status_code >= 400 and resp.request.url and "/api/" in resp.request.url:
        error = resp.json()["error"]
        assert error["code"] and error["reason"], error


# --- HTTP API bodies ----------------------------------------------------------------------------------------------


async def _accepted_call(url: str, user: str, password: str) -> tuple[str, str]:
    """A customer's call answered by ``user``: its counter session id and the customer's join token."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as staff, \
            aiohttp.ClientSession() as phone:
        agent = await SignalingClient.staff(staff, url, user, password)
        customer = await SignalingClient.customer(phone, url)
        try:
            await customer.send(p.Join(claimed_phone="13800138000"))
            await agent.send(p.Presence(state="available"))
            offer = await agent.expect(p.CallOffer, within=20)
            await agent.send(p.Accept(call_id=offer.call_id))
            await customer.expect(p.CallStarted, within=10)
            await agent.send(p.Presence(state="away"))
            return offer.call_id, customer.token or ""
        finally:
            await agent.close()
            await customer.close()


def test_openapi_operations_answer_every_generated_body_clearly(node: Node) -> None:
    doc = requests.get(node.url + "/api/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(doc)
    http, csrf = _staff(node.url, "agent1", "agent1-demo")
    sid, token = asyncio.run(_accepted_call(node.url, "agent1", "agent1-demo"))
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @FUZZ
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            nonlocal calls
            if case.path_parameters and "sid" in case.path_parameters:
                case.path_parameters["sid"] = sid
            resp = case.call(base_url=node.url, session=http, headers={**csrf, "X-Customer-Token": token},
                             timeout=30)
            calls += 1
            _clear(resp)

        check()
    assert calls > 100
    assert requests.get(node.url + "/healthz", timeout=10).status_code == 200


@given(body=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                      st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                                   lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c,
                                                                                       max_size=4),
                                   max_leaves=12).map(lambda v: json.dumps(v).encode())))
@FUZZ
def test_raw_bodies_on_unauthenticated_endpoints(node: Node, body: bytes) -> None:
    for path in ("/api/auth/login", "/api/customer/join"):
        resp = requests.post(node.url + path, data=body, headers={"Content-Type": "application/json"}, timeout=10)
        _clear(resp)
        assert resp.status_code in (200, 400, 401, 413), resp.text


# --- signaling on a live socket ---------------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=10), c, max_size=3), max_leaves=8,
)
_typed = st.builds(lambda kind, fields: json.dumps({**fields, "type": kind}),
                   st.sampled_from(sorted(p.CLIENT_TYPES)),
                   st.dictionaries(st.sampled_from(["call_id", "token", "sdp", "kind", "text", "to", "sender", "v",
                                                    "ref", "state", "care", "step", "step_id", "status"]), _json,
                                   max_size=5))
_frame = st.one_of(_typed, st.text(max_size=100), st.binary(max_size=100))


@given(frames=st.lists(_frame, min_size=1, max_size=12))
@FUZZ
def test_garbage_frames_get_errors_and_the_socket_stays_open(node: Node, frames: list[str | bytes]) -> None:
    async def run() -> None:
        async with aiohttp.ClientSession() as http:
            client = await SignalingClient.customer(http, node.url)
            try:
                for frame in frames:
                    if isinstance(frame, bytes):
                        await client.ws.send_bytes(frame)
                    else:
                        await client.send(frame)
                await client.send(p.Ping(ref="alive"))
                while True:  # each frame got its answer (often an error); then our pong
                    message = await client.recv(within=10)
                    if isinstance(message, p.ErrorMsg):
                        assert message.code and message.reason
                    if isinstance(message, p.Pong) and message.ref == "alive":
                        break
                assert not client.closed
            finally:
                await client.close()

    asyncio.run(run())


_sdp = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=3000).map(
    lambda s: "v=0\r\n" + s + "\r\n")


@given(sdps=st.lists(_sdp, min_size=1, max_size=4))
@settings(max_examples=8, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
def test_sdp_is_relayed_byte_for_byte(node: Node, sdps: list[str]) -> None:
    async def run() -> None:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as staff, \
                aiohttp.ClientSession() as phone:
            agent = await SignalingClient.staff(staff, node.url, "agent2", "agent2-demo")
            customer = await SignalingClient.customer(phone, node.url)
            try:
                await customer.send(p.Join())
                await agent.send(p.Presence(state="available"))
                offer = await agent.expect(p.CallOffer, within=20)
                await agent.send(p.Accept(call_id=offer.call_id))
                await customer.expect(p.CallStarted, within=10)
                for sdp in sdps:
                    await agent.send(p.Sdp(call_id=offer.call_id, kind="offer", sdp=sdp))
                    got = await customer.expect(p.Sdp, within=10)
                    assert got.sdp == sdp and got.sender == f"agent:{agent.welcome.id}"  # type: ignore[union-attr]
                    await customer.send(p.Sdp(call_id=offer.call_id, kind="answer", sdp=sdp[::-1]))
                    assert (await agent.expect(p.Sdp, within=10)).sdp == sdp[::-1]
                await agent.send(p.Hangup(call_id=offer.call_id))
                await customer.expect(p.CallEnded, within=10)
            finally:
                await agent.close()
                await customer.close()

    asyncio.run(run())


# --- images -----------------------------------------------------------------------------------------------------------


def png_bomb(width: int, height: int) -> bytes:
    """A valid grayscale PNG of zeros: a few hundred kB that decode to width*height*3 bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    packer = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def _jpeg(width: int = 64, height: int = 48) -> bytes:
    return bytes(cv2.imencode(".jpg", np.full((height, width, 3), 128, np.uint8))[1].tobytes())


@pytest.mark.parametrize("data", [
    b"", b"\x00", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBP", b"GIF89a" + b"\x00" * 20,
    _jpeg()[:200], _jpeg()[: len(_jpeg()) // 2], b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    png_bomb(20000, 20000), png_bomb(9000, 10), png_bomb(8, 8),
], ids=["empty", "one-byte", "jpeg-magic", "png-magic", "webp-magic", "gif", "jpeg-200", "jpeg-half", "svg",
        "png-bomb-20000", "png-too-wide", "png-too-small"])
def test_bad_images_are_refused_with_a_reason(data: bytes) -> None:
    with pytest.raises(ImageError) as refused:
        as_bgr(data)
    assert "send" in str(refused.value) or "out of range" in str(refused.value)


def test_image_header_sizes_are_read_without_decoding() -> None:
    assert declared_size(png_bomb(20000, 20000)[:64]) == (20000, 20000)
    for ext in (".png", ".jpg", ".webp"):
        data = cv2.imencode(ext, np.zeros((33, 77, 3), np.uint8))[1].tobytes()
        assert declared_size(data) == (77, 33), ext
    assert MAX_SIDE * MAX_SIDE < 20000 * 20000


@given(data=st.binary(max_size=2048), cut=st.integers(0, 4000), flip=st.integers(0, 4000))
@FUZZ
def test_mangled_jpeg_and_png_decode_or_are_refused(data: bytes, cut: int, flip: int) -> None:
    for base in (_jpeg(), bytes(cv2.imencode(".png", np.zeros((40, 40, 3), np.uint8))[1].tobytes())):
        mangled = bytearray(base[: max(1, cut % (len(base) + 1))] + data)
        if mangled:
            mangled[flip % len(mangled)] ^= 0xFF
        try:
            image = as_bgr(bytes(mangled))
        except ImageError:
            continue
        assert image.ndim == 3 and image.shape[2] == 3 and max(image.shape[:2]) <= MAX_SIDE


# --- audit bundles -------------------------------------------------------------------------------------------------


_KEY: list[str] = []


@pytest.fixture(scope="module")
def bundle(node: Node) -> dict[str, Any]:
    http, _ = _staff(node.url, "audit1", "audit1-demo")
    _KEY[:] = [http.get(node.url + "/.well-known/audit-key", timeout=30).json()["public_key_hex"]]
    resp = http.get(node.url + "/api/audit/export", timeout=30)
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    assert verify_bundle(copy.deepcopy(data), _KEY[0]).ok
    return data


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:3]):
            out += _paths(v, (*prefix, i))
    return out


@given(data=st.data())
@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_mangled_audit_bundles_never_pass_and_never_crash(bundle: dict[str, Any], data: st.DataObject) -> None:
    mangled = copy.deepcopy(bundle)
    path = data.draw(st.sampled_from(_paths(mangled)[1:]))
    parent = mangled
    for key in path[:-1]:
        parent = parent[key]
    replacement = data.draw(st.one_of(_json, st.just("00" * 32), st.just(None)))
    original = parent[path[-1]]
    if original == replacement or (isinstance(original, int) and isinstance(replacement, str)
                                   and replacement.strip().isdigit() and int(replacement) == original):
        return  # the same value ("0000" for 0 reads as 0)
    parent[path[-1]] = replacement
    report = verify_bundle(mangled, _KEY[0])  # a report, never an exception
    # Labels the verifier does not rely on: key ids, the raw key (used only against a pinned key) and
    # the stored leaf hash (recomputed from the body), the note text (re-rendered from the signed fields).
    changed_meaning = path[-1] not in ("key_id", "raw_hex", "leaf_hash", "note")
    if changed_meaning and report.ok:
        # Dropping whole entries or checkpoints is not tampering with what is left (a bundle may cover
        # any range), but the report must show that less was checked.
        original = verify_bundle(copy.deepcopy(bundle), _KEY[0])
        assert (report.entries, report.checkpoints) != (original.entries, original.checkpoints), (path, replacement)
    if not report.ok:
        assert report.problems and all(pr.message for pr in report.problems)


def test_cli_reports_a_broken_bundle_file_clearly(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "bundle.json"
    bad.write_text('{"format": 1, "entries": [', encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "counter.cli", "audit", "verify", str(bad)],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
