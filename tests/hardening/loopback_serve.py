"""``counter serve`` whose WebRTC peers (the witness) gather host candidates on 127.0.0.1 only.

Run as ``python -m tests.hardening.loopback_serve`` by :class:`tests.hardening.nodes.LoopbackNode`:
the same server as ``counter serve``, restricted like the test process (:func:`signaling.peer.loopback_only`),
so that no ICE check of a test's call ever leaves loopback.
"""

from __future__ import annotations

import sys

from counter.cli import main
from signaling.peer import loopback_only

if __name__ == "__main__":
    loopback_only()
    sys.exit(main(["serve"]))
