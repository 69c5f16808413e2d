"""Calls over a real (namespaced) network link that drops, shrinks and comes back: the customer's
Chromium on one side of a veth pair, the app and the agent's Chromium on the other."""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from counter.config import load_settings
from tests.browser.calllab import CallLab, dataset
from tests.browser.harness import CHROMIUM
from tests.browser.impair import Impair
from tests.browser.netlab import ADDR_A, ADDR_B, ADDR_B2, can_make_namespaces, start_coturn, stop_coturn

LOSS = 0.05
IMPAIR_PORT = 3479
TURN_SECRET = "test-turn-secret"


def _lab(settings: Any, y4m: Path, extra: Callable[[CallLab], Any] | None = None) -> Iterator[CallLab]:
    if not Path(CHROMIUM).exists() or shutil.which("ffmpeg") is None:
        pytest.skip("needs Debian chromium and ffmpeg (see ../shared/RECIPES.md)")
    why = can_make_namespaces()
    if why:
        pytest.skip(f"needs network namespaces: {why}")
    call_lab = CallLab(settings, y4m)
    proc = None
    try:
        call_lab.start()
        if extra is not None:
            proc = extra(call_lab)
        yield call_lab
    finally:
        call_lab.close()
        if proc is not None:
            stop_coturn(proc)


def _settings(tmp_path: Path, turn: str | None = None) -> Any:
    """The app's settings; ``turn``: coturn in the app's namespace, the TURN server over that transport
    (skips without coturn)."""
    if turn is None:
        more: dict[str, Any] = {}
    else:
        if shutil.which("turnserver") is None:
            pytest.skip("needs coturn (apt-get install coturn)")
        more = {"turn_urls": [f"turn:{ADDR_A}:3478?transport={turn}"], "turn_secret": TURN_SECRET}
    return load_settings(
        config_file=tmp_path / "none.toml", environ={}, tls=False, host="127.0.0.1", port=8443,
        data_dir=tmp_path / "data", cert_dir=tmp_path / "certs", require_recording=False, **more,
    )


@pytest.fixture
def lab(face_y4m: Path, tmp_path: Path) -> Iterator[CallLab]:
    """A fresh pair of namespaces, the app and two Chromiums, for one call."""
    yield from _lab(_settings(tmp_path), face_y4m)


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


def _weak_link(lab: CallLab, relay: Impair) -> None:
    """100 kbit/s both ways and ``relay`` dropping LOSS of the customer's datagrams each way for
    20 s, then the link restored: the checks of acceptance (a)."""
    lab.net.rate(100)
    relay.loss = LOSS
    audio_windows: list[dict[str, dict[str, bool]]] = []
    paused_at: dict[str, float | None] = {"customer": None, "agent": None}
    start = time.monotonic()
    while time.monotonic() - start < 20:
        grew = lab.flowing(1.5)
        audio_windows.append(grew)
        for side, other in (("customer", "agent"), ("agent", "customer")):
            if paused_at[side] is None and dataset(lab, side, "media") == "audio_only" and not grew[other]["video"]:
                paused_at[side] = round(time.monotonic() - start, 2)
    said = {"customer": lab.page_text("customer", "#notice"), "agent": lab.page_text("agent", "#link-note")}
    lab.net.rate(None)
    relay.loss = 0.0
    restored = time.monotonic()
    back = None
    media_after: dict[str, str | None] = {}
    while back is None and time.monotonic() - restored < 10:
        grew = lab.flowing(0.5)
        media_after = {side: dataset(lab, side, "media") for side in ("customer", "agent")}
        if all(grew[side]["video"] for side in grew) and set(media_after.values()) == {"video"}:
            back = round(time.monotonic() - restored, 2)
    said_after = {"customer": lab.page_text("customer", "#notice"), "agent": lab.page_text("agent", "#link-note")}
    figures = lab.figures()
    print(f"\nweak link (100 kbit/s + {LOSS:.0%} loss): video paused after {paused_at} s, back {back} s after "
          f"the link returned; said {said}; after {said_after}; relay {relay.counts}")
    silent = [w for w in audio_windows[2:] if not (w["customer"]["audio"] and w["agent"]["audio"])]
    assert not silent, f"sound stopped during the weak link: {audio_windows}"
    assert None not in paused_at.values(), f"the video did not pause: {paused_at} {audio_windows}"
    assert "视频先暂停" in said["customer"], said
    assert "视频先暂停" in said["agent"] and "video is paused" in said["agent"], said
    assert back is not None, f"video not back within 10 s: {lab.flowing()} {media_after}"
    assert "视频恢复了" in said_after["customer"] and "video is back" in said_after["agent"], said_after
    assert figures is not None and figures["audio_only_s"] > 0 and figures["worst"] == "poor", figures


@pytest.fixture
def lossy_lab(face_y4m: Path, tmp_path: Path) -> Iterator[tuple[CallLab, Impair]]:
    """The lab with coturn (UDP) in the app's namespace and the impairment relay in the customer's,
    in front of it: the customer's TURN over UDP, so all its media, crosses the relay."""
    settings = _settings(tmp_path, "udp")
    for call_lab in _lab(settings, face_y4m, lambda lab: start_coturn(lab.net.a, ADDR_A, TURN_SECRET, udp=True)):
        assert call_lab.b is not None
        relay = call_lab.b.run(Impair((ADDR_B, IMPAIR_PORT), (ADDR_A, 3478)).start())
        try:
            yield call_lab, relay
        finally:
            call_lab.b.loop.call_soon_threadsafe(relay.close)


def test_weak_link_audio_goes_on_video_pauses_and_comes_back(lossy_lab: tuple[CallLab, Impair]) -> None:
    """100 kbit/s both ways and 5 % of the customer's datagrams lost each way (the impairment relay)
    for 20 s: sound keeps arriving on both sides, the video pauses and both screens say so; the link
    restored, the video is back on both sides within 10 s, said too.  (One call through the relay
    for both impairments keeps CI lean; bench/network.py also times the rate limit alone.)"""
    lab, relay = lossy_lab
    lab.call(turn_via=f"{ADDR_B}:{IMPAIR_PORT}")
    assert lab.rx()["customer"]["relay"], "the customer's media does not go through the relay"
    before = dataclasses.replace(relay.counts)
    _weak_link(lab, relay)
    assert relay.counts.up_dropped > before.up_dropped and relay.counts.down_dropped > before.down_dropped


HIDE = """(hidden) => {
  Object.defineProperty(document, "visibilityState", { configurable: true, get: () => hidden ? "hidden" : "visible" });
  Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
  if (hidden) {  // what a phone does to a page in the background: camera and microphone stopped
    for (const pc of window.__pcs) for (const s of pc.getSenders()) s.track?.stop();
  }
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def test_page_hidden_and_shown_again_media_resumes(lab: CallLab) -> None:
    """The customer leaves the browser (the phone stops camera and microphone) and comes back:
    the agent gets the customer's sound and video again, in the same call, without a reload."""
    lab.call()
    assert lab.b is not None
    lab.b.run(lab.customer.evaluate(HIDE, True))
    time.sleep(3)
    gone = lab.flowing(1.0)["agent"]
    lab.b.run(lab.customer.evaluate(HIDE, False))
    start = time.monotonic()
    back = None
    while back is None and time.monotonic() - start < 10:
        grew = lab.flowing(0.5)["agent"]
        if grew["audio"] and grew["video"]:
            back = time.monotonic() - start
    print(f"\nhidden: the agent received {gone}; media back after {back} s")
    assert gone == {"audio": False, "video": False}, f"the tracks were not stopped: {gone}"
    assert back is not None, f"no sound and video at the agent within 10 s: {lab.flowing()}"
    assert dataset(lab, "customer", "screen") == "call"


@pytest.fixture
def relay_lab(face_y4m: Path, tmp_path: Path) -> Iterator[CallLab]:
    """The lab with coturn in the app's namespace, TURN over TCP the only way the browsers are given."""
    yield from _lab(_settings(tmp_path, "tcp"), face_y4m, lambda lab: start_coturn(lab.net.a, ADDR_A, TURN_SECRET))


def test_relay_only_over_tcp_connects(relay_lab: CallLab) -> None:
    """Only relayed candidates, TURN only over TCP (coturn has no UDP listener): the call connects."""
    relay_lab.call(relay_only=True)
    rx = relay_lab.rx()
    assert rx["customer"]["relay"] and rx["agent"]["relay"], rx
