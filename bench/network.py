"""Recovery times of a call across a network link that fails, measured with two real Chromiums.

The customer's Chromium sits in one network namespace, the app and the agent's Chromium in another,
joined by a veth pair (tests/browser/netlab.py); nothing leaves the two namespaces.  Each round
places a call, then:

* ``outage``: the link down for 10 s, same addresses (the baseline: ICE revives the old pair);
* ``new address``: the link down for 10 s and the phone back on another address (a move from
  Wi-Fi to mobile data): the socket probe, the new offer and ICE must do the work;
* ``weak link``: 100 kbit/s both ways for 20 s, then unlimited: when the video is back both ways;
* ``weak + loss``: the same with the customer relay-only through TURN over UDP (coturn in the app's
  namespace) and the impairment relay (tests/browser/impair.py) in front of coturn dropping 5 % of
  the datagrams each way during the 20 s (netem is not in this kernel).

It prints the seconds from the link's return until media flows both ways, per round and the median.
Run as root (namespaces): ``.venv/bin/python -m bench.network --rounds 3``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from counter.config import load_settings  # noqa: E402
from tests.browser.calllab import CallLab, dataset  # noqa: E402
from tests.browser.harness import make_y4m  # noqa: E402
from tests.browser.impair import Impair  # noqa: E402
from tests.browser.netlab import ADDR_A, ADDR_B, ADDR_B2, start_coturn, stop_coturn  # noqa: E402

PHOTO = ROOT.parent / "shared" / "faces" / "faceonnx" / "sarah_paulson" / "sarah_2.jpg"
LIMIT_S = 30.0
LOSS = 0.05
IMPAIR_PORT = 3479
SECRET = "bench-turn-secret"


def outage(lab: CallLab, renumber: bool) -> float | None:
    lab.net.link(False)
    if renumber:
        lab.net.renumber(ADDR_B2)
    time.sleep(10)
    lab.net.link(True)
    return lab.wait_flowing(LIMIT_S)


def weak(lab: CallLab, relay: Impair | None = None) -> float | None:
    lab.net.rate(100)
    if relay is not None:
        relay.loss = LOSS
    time.sleep(20)
    lab.net.rate(None)
    if relay is not None:
        relay.loss = 0.0
    start = time.monotonic()
    while time.monotonic() - start < LIMIT_S:
        grew = lab.flowing(0.5)
        media = {dataset(lab, side, "media") for side in ("customer", "agent")}
        if all(grew[side]["video"] for side in grew) and media == {"video"}:
            return time.monotonic() - start
    return None


def one(kind: str, y4m: Path, tmp: Path) -> float | None:
    lossy = kind == "weak + loss"
    turn = {"turn_urls": [f"turn:{ADDR_A}:3478?transport=udp"], "turn_secret": SECRET} if lossy else {}
    settings = load_settings(
        config_file=tmp / "none.toml", environ={}, tls=False, host="127.0.0.1", port=8443,
        data_dir=tmp / f"data-{kind}-{time.monotonic_ns()}", cert_dir=tmp / "certs", require_recording=False,
        **turn,
    )
    lab = CallLab(settings, y4m)
    coturn = None
    try:
        lab.start()
        if lossy:
            assert lab.b is not None
            coturn = start_coturn(lab.net.a, ADDR_A, SECRET, udp=True)
            relay = lab.b.run(Impair((ADDR_B, IMPAIR_PORT), (ADDR_A, 3478)).start())
            lab.call(turn_via=f"{ADDR_B}:{IMPAIR_PORT}")
            return weak(lab, relay)
        lab.call()
        if kind == "weak link":
            return weak(lab)
        return outage(lab, renumber=kind == "new address")
    finally:
        lab.close()
        if coturn is not None:
            stop_coturn(coturn)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kinds", default="outage,new address,weak link,weak + loss")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        y4m = make_y4m(PHOTO, tmp / "face.y4m")
        print(f"customer {ADDR_B} <-veth-> app + agent; seconds from the link's return to media both ways")
        print(f"{'scenario':<14} {'rounds':<32} {'median':>8}")
        for kind in args.kinds.split(","):
            times = [one(kind, y4m, tmp) for _ in range(args.rounds)]
            done = [t for t in times if t is not None]
            shown = " ".join(f"{t:5.2f}" if t is not None else f">{LIMIT_S:.0f}" for t in times)
            median = f"{statistics.median(done):8.2f}" if len(done) == len(times) else f"{'>' + str(int(LIMIT_S)):>8}"
            print(f"{kind:<14} {shown:<32} {median}", flush=True)


if __name__ == "__main__":
    main()
