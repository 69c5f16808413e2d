"""Calls over a real (namespaced) network link that drops, shrinks and comes back: the customer's
Chromium on one side of a veth pair, the app and the agent's Chromium on the other."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from counter.config import load_settings
from tests.browser.calllab import CallLab
from tests.browser.harness import CHROMIUM
from tests.browser.netlab import ADDR_B2, can_make_namespaces


@pytest.fixture
def lab(face_y4m: Path, tmp_path: Path) -> Iterator[CallLab]:
    """A fresh pair of namespaces, the app and two Chromiums, for one call."""
    if not Path(CHROMIUM).exists() or shutil.which("ffmpeg") is None:
        pytest.skip("needs Debian chromium and ffmpeg (see ../shared/RECIPES.md)")
    why = can_make_namespaces()
    if why:
        pytest.skip(f"needs network namespaces: {why}")
    settings = load_settings(
        config_file=tmp_path / "none.toml", environ={}, tls=False, host="127.0.0.1", port=8443,
        data_dir=tmp_path / "data", cert_dir=tmp_path / "certs", require_recording=False,
    )
    call_lab = CallLab(settings, face_y4m)
    try:
        call_lab.start()
        yield call_lab
    finally:
        call_lab.close()


def test_outage_of_ten_seconds_call_back_without_reload(lab: CallLab) -> None:
    """The link goes down for 10 s: media flows both ways again within 5 s of it coming back."""
    lab.call()
    lab.net.link(False)
    lab.net.renumber(ADDR_B2)  # and the phone comes back on another network
    time.sleep(10)
    lab.net.link(True)
    back = lab.wait_flowing(5)
    if back is None:
        print("later:", lab.wait_flowing(40))
    print(f"\nrecovery after a 10 s outage: {back}")
    assert back is not None, f"no media both ways within 5 s of the link returning: {lab.flowing()}"
