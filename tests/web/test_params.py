"""Malformed or out-of-range numbers in the query string or the path are 400 with the parameter's
name (web/params.py), everywhere numbers are parsed: never a 500, never the whole log, never NaN."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import login
from web.errors import ApiError
from web.params import BIGINT_MAX, parse_float, parse_int


@pytest.mark.parametrize("raw", ["", "x", "1.5", "1e3", "١٢", "1_000", " 7", "99999999999999999999", "-1"])
def test_parse_int_refuses_what_is_not_a_plain_whole_number_in_bounds(raw: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_int(raw, "seq")
    assert caught.value.status == 400 and "'seq'" in caught.value.text


@pytest.mark.parametrize("raw", ["nan", "NaN", "inf", "-inf", "1e400", "0", "-3", "745", "x", ""])
def test_parse_float_refuses_non_finite_and_out_of_bounds(raw: str) -> None:
    with pytest.raises(ApiError):
        parse_float(raw, "hours", gt=0, le=744)


def test_bounds_are_inclusive_where_said() -> None:
    assert parse_int(str(BIGINT_MAX), "seq") == BIGINT_MAX
    assert parse_int("-1", "after", lo=-1) == -1
    assert parse_float("744", "hours", gt=0, le=744) == 744.0
    assert parse_float("0.5", "hours", gt=0, le=744) == 0.5


@pytest.mark.parametrize("path", [
    "/api/audit/entries/99999999999999999999999",
    "/api/audit/entries?after=99999999999999999999",
    "/api/audit/entries?limit=-5",
    "/api/audit/entries?limit=0",
    "/api/audit/entries?limit=abc",
    "/api/audit/proof/inclusion?seq=99999999999999999999",
    "/api/audit/proof/consistency?from=1&to=nan",
    "/api/audit/export?from=-7",
    "/api/supervisor/metrics?hours=nan",
    "/api/supervisor/metrics?hours=inf",
    "/api/supervisor/metrics?hours=-1",
    "/api/consoles/kpis?hours=nan",
])
async def test_malformed_numbers_are_400(app_client: TestClient[Any, Any], path: str) -> None:
    who = "super1" if "supervisor" in path or "consoles" in path else "audit1"
    await login(app_client, who, f"{who}-demo")
    resp = await app_client.get(path)
    text = await resp.text()
    assert resp.status == 400, text
    body = json.loads(text)  # strict JSON: no NaN
    assert body["error"]["code"] == "bad_request" and body["error"]["field"], body


async def test_path_ids_too_large_for_the_database_are_400(app_client: TestClient[Any, Any]) -> None:
    headers = await login(app_client, "super1", "super1-demo")
    for path in ("/api/counter/approvals/99999999999999999999", "/api/counter/workorders/99999999999999999999/status"):
        resp = await app_client.post(path, json={"status": "resolved"}, headers=headers)
        assert resp.status == 400, await resp.text()


async def test_good_numbers_still_work(app_client: TestClient[Any, Any]) -> None:
    await login(app_client, "audit1", "audit1-demo")
    resp = await app_client.get("/api/audit/entries?after=-1&limit=2")
    assert resp.status == 200 and len((await resp.json())["entries"]) <= 2
    await login(app_client, "super1", "super1-demo")
    resp = await app_client.get("/api/supervisor/metrics?hours=1.5")
    assert resp.status == 200 and (await resp.json())["hours"] == 1.5
