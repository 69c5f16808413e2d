"""A live call for the identity API's tests: the shared models (or a skip), the app ready, the agent's side.

Import :func:`models` into a test module (``from tests.web.live import models as models``) to skip it
without the shared models and point the app at them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from counter.appkeys import IDENTITY, NOT_READY
from tests.conftest import FACES

MODELS = FACES.parent / "models"
NICOLE = "13800138000"  # real-name photo faceonnx/nicole_kidman/nicole_0.jpg


@pytest.fixture(autouse=True)
def models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip without the shared models; else the app loads them."""
    if not (MODELS / "face_detection_yunet_2023mar.onnx").is_file():
        pytest.skip("shared models not present")
    monkeypatch.setenv("COUNTER_MODELS_DIR", str(MODELS))


async def ready(app_client: TestClient[Any, Any]) -> None:
    """Wait until the app has loaded the face models."""
    for _ in range(300):
        if "models" not in app_client.app[NOT_READY]:
            assert app_client.app[IDENTITY].service is not None
            return
        await asyncio.sleep(0.05)
    raise AssertionError(app_client.app[NOT_READY])


class Live:
    """The agent's side of a live call with its counter session open: ``post`` to the session's API."""

    def __init__(self, http: aiohttp.ClientSession, base: str, sid: str, csrf: dict[str, str],
                 customer_token: str) -> None:
        self.http, self.base, self.sid, self.csrf, self.customer_token = http, base, sid, csrf, customer_token

    async def post(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {**self.csrf, **kwargs.pop("headers", {})}
        async with self.http.post(f"{self.base}/api/counter/sessions/{self.sid}{path}", headers=headers,
                                  **kwargs) as resp:
            return resp.status, await resp.json()
