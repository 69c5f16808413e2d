"""Two network namespaces joined by a veth pair, for calls over a link the test can shape or cut.

``rcA-<pid>`` (10.77.0.1) holds the app and the agent's Chromium; ``rcB-<pid>`` (10.77.0.2) holds the
customer's Chromium, so everything the customer sends crosses the veth pair.  Nothing is sent to any
other address: the namespaces have no other interface than ``lo`` and their end of the pair.
Rate limits use ``tc tbf`` (netem is not in this kernel, see ../shared/RECIPES.md); an outage takes
the link down.  Each namespace runs its own event loop on a thread that ``setns`` into it, so the
Playwright driver and Chromium it starts live there too.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.browser.isolation import CLONE_NEWNET, IsolatedLoop

ADDR_A = "10.77.0.1"
ADDR_B = "10.77.0.2"
ADDR_B2 = "10.77.0.3"

#: Installed before any page script: every RTCPeerConnection the page makes, for the test to read
#: its statistics itself (not through the page's own code, which is what is tested).
WATCH_PCS = """
(() => {
  window.__pcs = [];
  const Orig = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Orig {
    constructor(config, ...rest) {
      if (window.__relayOnly) config = { ...(config || {}), iceTransportPolicy: "relay" };
      if (window.__turnVia) {  // TURN over UDP through the impairment relay (tests/browser/impair.py)
        const to = (u) => (u.startsWith("turn:") ? `turn:${window.__turnVia}?transport=udp` : u);
        const via = (s) => ({ ...s, urls: [].concat(s.urls).map(to) });
        config = { ...config, iceServers: (config.iceServers || []).map(via) };
      }
      super(config, ...rest);
      window.__pcs.push(this);
    }
  };
  window.__rx = async () => {
    const out = { audio: 0, video: 0, relay: false };
    for (const pc of window.__pcs) {
      if (pc.connectionState === "closed") continue;
      const stats = await pc.getStats();
      stats.forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "audio") out.audio += s.packetsReceived || 0;
        if (s.type === "inbound-rtp" && s.kind === "video") out.video += s.framesDecoded || 0;
        if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
          const local = stats.get(s.localCandidateId);
          if (local && local.candidateType === "relay") out.relay = true;
        }
      });
    }
    return out;
  };
})();
"""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _tc(ns: str, *args: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, "tc", *args], capture_output=True, text=True, check=True)


class NsLoop(IsolatedLoop):
    """An event loop on its own thread inside the named network namespace ``ns``."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        super().__init__(name=f"netns-{ns}")

    @property
    def error(self) -> str | None:
        return self.why_not_isolated

    def _enter(self) -> str | None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/var/run/netns/{self.ns}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                return f"setns({self.ns}) failed: {os.strerror(ctypes.get_errno())}"
        finally:
            os.close(fd)
        return None


class NetLab:
    """The pair of namespaces; :meth:`close` deletes them (and with them the veth pair)."""

    def __init__(self) -> None:
        tag = str(os.getpid() % 100000)
        self.a, self.b = f"rcA-{tag}", f"rcB-{tag}"
        self.va, self.vb = f"rvA{tag}", f"rvB{tag}"
        self.closed = True

    def open(self) -> None:
        self.closed = False
        _ip("netns", "add", self.a)
        _ip("netns", "add", self.b)
        _ip("link", "add", self.va, "type", "veth", "peer", "name", self.vb)
        _ip("link", "set", self.va, "netns", self.a)
        _ip("link", "set", self.vb, "netns", self.b)
        _ip("-n", self.a, "addr", "add", f"{ADDR_A}/24", "dev", self.va)
        _ip("-n", self.b, "addr", "add", f"{ADDR_B}/24", "dev", self.vb)
        for ns, dev in ((self.a, self.va), (self.b, self.vb)):
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", dev, "up")

    def link(self, up: bool) -> None:
        """Take the link down (an outage) or bring it back."""
        state = "up" if up else "down"
        _ip("-n", self.a, "link", "set", self.va, state)
        _ip("-n", self.b, "link", "set", self.vb, state)

    def renumber(self, addr: str) -> None:
        """Give the customer's side another address (a phone moving from Wi-Fi to mobile data)."""
        _ip("-n", self.b, "addr", "flush", "dev", self.vb)
        _ip("-n", self.b, "addr", "add", f"{addr}/24", "dev", self.vb)

    def rate(self, kbit: int | None) -> None:
        """Limit both directions to ``kbit`` kbit/s with tbf (None: no limit)."""
        for ns, dev in ((self.a, self.va), (self.b, self.vb)):
            if kbit is None:
                with contextlib.suppress(subprocess.CalledProcessError):
                    _tc(ns, "qdisc", "del", "dev", dev, "root")
            else:
                _tc(ns, "qdisc", "replace", "dev", dev, "root", "tbf", "rate", f"{kbit}kbit", "burst", "4kb",
                    "latency", "100ms")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for ns in (self.a, self.b):
            _ip("netns", "del", ns, check=False)


def can_make_namespaces() -> str | None:
    """None when namespaces can be made here; else why not."""
    probe = f"rcP-{os.getpid() % 100000}"
    done = _ip("netns", "add", probe, check=False)
    if done.returncode != 0:
        return f"ip netns add failed: {done.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


def start_coturn(ns: str, addr: str, secret: str, udp: bool = False) -> subprocess.Popen[bytes]:
    """coturn in namespace ``ns`` on ``addr``:3478, TCP only (no UDP listener) unless ``udp``, REST-API
    secret; its files in a fresh directory under /tmp that its unprivileged user can reach (pytest's
    are 0700)."""
    workdir = Path(tempfile.mkdtemp(prefix="rc-turn-"))
    os.chmod(workdir, 0o777)
    conf = workdir / "turnserver.conf"
    conf.write_text("\n".join([
        f"listening-ip={addr}", f"relay-ip={addr}", "listening-port=3478", "min-port=49160", "max-port=49200",
        "use-auth-secret", f"static-auth-secret={secret}", "realm=remote-counter", "fingerprint",
        *([] if udp else ["no-udp"]), "no-tls", "no-dtls", "no-cli", "no-multicast-peers",
        f"userdb={workdir / 'turndb'}",
        f"pidfile={workdir / 'turn.pid'}", f"log-file={workdir / 'turn.log'}", "simple-log",
    ]) + "\n")
    proc = subprocess.Popen(["ip", "netns", "exec", ns, "runuser", "-u", "nobody", "--", "turnserver", "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(50):
        done = subprocess.run(["ip", "netns", "exec", ns, "ss", "-ltn", "sport = :3478"], capture_output=True,
                              text=True, check=False)
        if ":3478" in done.stdout:
            return proc
        time.sleep(0.1)
    proc.terminate()
    raise RuntimeError(f"coturn did not listen, see {workdir / 'turn.log'}")


def stop_coturn(proc: subprocess.Popen[bytes]) -> None:
    """Stop a :func:`start_coturn` server and remove its directory."""
    proc.terminate()
    proc.wait(10)
    if isinstance(proc.args, list):  # start_coturn's own directory: its config is the last argument
        shutil.rmtree(Path(str(proc.args[-1])).parent, ignore_errors=True)
