"""Browser fixtures: one Chromium and one app server for the whole session, on loopback only."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from counter.config import load_settings
from tests.browser.harness import CHROMIUM, BrowserEnv, make_y4m
from tests.browser.isolation import IsolatedLoop

FACES = Path(__file__).resolve().parents[2].parent / "shared" / "faces"
MODELS = Path(os.environ.get("COUNTER_MODELS_DIR", str(FACES.parent / "models")))
FACE_PHOTO = FACES / "faceonnx" / "sarah_paulson" / "sarah_2.jpg"


@pytest.fixture(scope="session")
def face_y4m(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fake camera clip made from a real face photo (not committed: 20 MB)."""
    if not FACE_PHOTO.is_file():
        pytest.skip(f"no face photo at {FACE_PHOTO}")
    return make_y4m(FACE_PHOTO, tmp_path_factory.mktemp("camera") / "face.y4m")


@pytest.fixture(scope="session")
def env(face_y4m: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserEnv]:
    """The real app on a free port and Chromium, in a network namespace that has only ``lo``."""
    if not Path(CHROMIUM).exists() or shutil.which("ffmpeg") is None:
        pytest.skip("needs Debian chromium and ffmpeg (see ../shared/RECIPES.md)")
    pytest.importorskip("playwright.async_api")
    tmp = tmp_path_factory.mktemp("app")
    settings = load_settings(
        config_file=tmp / "none.toml", environ={}, tls=False, host="127.0.0.1", port=8443,
        data_dir=tmp / "data", cert_dir=tmp / "certs", demo_faces_dir=FACES if FACES.is_dir() else None,
        **({"models_dir": MODELS} if MODELS.is_dir() else {}),
        require_recording=False,  # the recording rule has its own tests (tests/scenarios/test_recording_rule.py)
    )
    iso = IsolatedLoop()
    if not iso.isolated:
        iso.stop()
        pytest.skip(f"browser tests run WebRTC and must stay on loopback; {iso.why_not_isolated} "
                    "(run as root, or with CAP_SYS_ADMIN)")
    browser_env = BrowserEnv(iso)
    try:
        iso.run(_loopback_ice())
        iso.run(browser_env.start(settings, face_y4m), timeout=120)
        yield browser_env
    finally:
        iso.run(browser_env.stop(), timeout=60)
        iso.stop()


async def _loopback_ice() -> None:
    from signaling.peer import loopback_only

    loopback_only()
