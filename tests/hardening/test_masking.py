"""No ID number, phone number or face template reaches the logs, on a realistic flow at DEBUG."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
from aiohttp.test_utils import TestClient, TestServer

from counter.config import Settings
from counter.logging import MaskingFilter, install, mask
from signaling import protocol as p
from signaling.client import SignalingClient
from tests.conftest import FACES
from tests.hardening.leaks import leaks

MODELS = Path("/work/shared/models")
HAVE_MODELS = MODELS.is_dir() and FACES.is_dir()
ID_NUMBER = "11010519491231002X"


def test_the_scan_finds_what_it_must() -> None:
    assert leaks("id 320102199001011234 and 13800138000, [" + ", ".join(["0.5"] * 20) + "]")
    assert leaks("score 0.17778404073 at 1.3812345678e-05") == []
    digest = "0fb4afc9765f5a334f5e1fa86f795cfa1937a5e493320787787161363a34ed0e"  # seen in a CI run
    assert leaks(f"(7, '{digest}', '2026-12-01')") == []
    assert len(leaks(f"(7, '{digest}', '320102199001011234')")) == 1


def test_mask_examples() -> None:
    assert mask("id 320102199001011234 ok") == "id 3201**********1234 ok"
    assert mask("id 11010519491231002X.") == "id 1101**********002X."
    assert mask("call +86 138-0013-8000 now") == "call 138****8000 now"
    assert mask("tel:13800138000,13900139000") == "tel:138****8000,139****9000"
    template = np.random.default_rng(1).standard_normal(128).astype(np.float32)
    assert "numbers withheld" in mask(f"template={template}")
    assert "numbers withheld" in mask(f"template={template.tolist()}")
    # Hashes, ids and ordinary numbers stay readable.
    sha = "a13800138000b" + "0" * 51
    assert mask(f"evidence {sha}") == f"evidence {sha}"
    assert mask("took 12.5 ms, 3 retries, port 8443, at 1.0, 2.0") == "took 12.5 ms, 3 retries, port 8443, at 1.0, 2.0"


def test_masking_covers_args_exceptions_and_handlers_set_elsewhere(debug_log: io.StringIO) -> None:
    install()
    log = logging.getLogger("tests.hardening.masking")
    template = np.random.default_rng(2).standard_normal(512).tolist()
    log.debug("customer %s with id %s and template %s", "13800138000", ID_NUMBER, template)
    try:
        raise ValueError(f"bad id {ID_NUMBER} for 13900139000")
    except ValueError:
        log.exception("refused")
    text = debug_log.getvalue()
    assert "1101**********002X" in text and "138****8000" in text and "139****9000" in text
    assert "Traceback" in text and leaks(text) == []
    # The filter form, for a handler configured before install() (or without it).
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "to %s", ("+8613700137000",), None)
    MaskingFilter().filter(record)
    assert record.getMessage() == "to 137****7000"


async def test_a_whole_flow_at_debug_leaks_nothing(debug_log: io.StringIO, settings: Settings) -> None:
    from counter.app import build_app
    from counter.appkeys import IDENTITY

    models = HAVE_MODELS
    app = await build_app(settings.model_copy(update={"models_dir": MODELS if models else None}))
    async with TestClient(TestServer(app)) as client, \
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as staff, \
            aiohttp.ClientSession() as phone:
        base = str(client.make_url("")).rstrip("/")
        customer = await SignalingClient.customer(phone, base)
        agent = await SignalingClient.staff(staff, base, "agent1", "agent1-demo")
        try:
            await customer.send(p.Join(claimed_phone="+86 138-0013-8000"))
            await agent.send(p.Presence(state="available"))
            offer = await agent.expect(p.CallOffer)
            assert offer.claimed_phone is not None
            sid = offer.call_id
            await agent.send(p.Accept(call_id=sid))
            await customer.expect(p.CallStarted)
            async with staff.get(f"{base}/api/auth/me") as resp:
                csrf = {"X-CSRF-Token": (await resp.json())["csrf_token"]}
            s = f"{base}/api/counter/sessions/{sid}"

            async def post(path: str, body: Any) -> tuple[int, Any]:
                async with staff.post(s + path, json=body, headers=csrf) as resp:
                    return resp.status, await resp.json()

            assert (await post("/verify-password", {"password": "246810"}))[0] == 200
            assert (await post("/consent", {"face_consent": True}))[0] == 200
            # Personal inputs: a real-name update with the holder's ID (refused: needs A3), a bad one,
            # a contact number, and an invalid phone claim.
            tx = {"code": "realname.update", "idempotency_key": "rn-1",
                  "inputs": {"name": "妮可·基德曼", "id_number": ID_NUMBER, "birth_date": "1949-12-31",
                             "id_expires": "2040-01-01"}}
            status, body = await post("/transactions", tx)
            assert status < 500, body  # refused or pending: it went through the engine
            bad = {**tx, "idempotency_key": "rn-2", "inputs": {**tx["inputs"], "id_number": "110105194912310021"}}
            assert (await post("/transactions", bad))[0] < 500
            assert (await post("/claim", {"msisdn": "23900139000"}))[0] == 400
            status, body = await post("/transactions", {"code": "datacap.set", "inputs": {"cap_mb": 512},
                                                        "idempotency_key": "cap-1"})
            assert status == 202, body
            if models:
                ident = app[IDENTITY]
                for _ in range(600):
                    if ident.service is not None or (ident.error and ident.error != "loading models"):
                        break
                    await asyncio.sleep(0.1)
                # Small enough to arrive in one read: web.identity_api reads the body with one
                # content.read(n), which returns whatever has arrived (see docs/THREAT_MODEL.md).
                image = cv2.imread(str(FACES / "faceonnx/nicole_kidman/nicole_0.jpg"))
                image = cv2.resize(image, (240, 334))
                photo = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
                async with staff.post(s + "/identity/face", data=photo,
                                      headers={**csrf, "Content-Type": "image/jpeg"}) as resp:
                    assert resp.status in (200, 422), await resp.text()
            await agent.send(p.Hangup(call_id=sid))
            await customer.expect(p.CallEnded)
        finally:
            await customer.close()
            await agent.close()
    text = debug_log.getvalue()
    assert "DEBUG" in text and len(text) > 1000  # the capture really saw the flow
    assert leaks(text) == [], leaks(text)[:5]


async def test_no_sql_parameter_reaches_the_log_at_debug(debug_log: io.StringIO, tmp_path: Path) -> None:
    """The SQLite driver logs every statement it runs at DEBUG, parameters and all: a name, an
    address, a code or a whole JPEG.  None of them reaches a handler (the statement's function name does)."""
    from storage import open_database

    install()
    db = await open_database(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        await db.execute("CREATE TABLE t (name TEXT, address TEXT, photo BLOB)")
        jpeg = b"\xff\xd8\xff\xe0" + b"JFIF-bytes-of-a-face" * 50
        await db.execute("INSERT INTO t VALUES ($1, $2, $3)", "王秀英", "北京市东城区示例路1号", jpeg)
        assert await db.fetchval("SELECT name FROM t WHERE address = $1", "北京市东城区示例路1号") == "王秀英"
    finally:
        await db.close()
    text = debug_log.getvalue()
    assert "aiosqlite" in text and "executing" in text  # the driver did log, at DEBUG
    for secret in ("王秀英", "示例路", "JFIF", "\\xff\\xd8"):
        assert secret not in text, text[:2000]
    assert mask("invalid input for query argument $2: '王秀英' (expected str)") == \
        "invalid input for query argument $2: <value withheld>"
