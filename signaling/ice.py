"""ICE servers handed to each session: STUN, and TURN with coturn REST-API credentials.

coturn with ``use-auth-secret`` and ``static-auth-secret=SECRET`` accepts the user name
``"<expiry unix time>:<user>"`` with the password ``base64(HMAC-SHA1(SECRET, user name))`` until
the expiry time, so the shared secret never leaves the server and a leaked credential soon expires.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from signaling.protocol import IceServer


def turn_credentials(secret: str, user: str, ttl_s: int, now: float | None = None) -> tuple[str, str]:
    """``(username, password)`` for coturn's REST API, valid for ``ttl_s`` seconds."""
    expiry = int((time.time() if now is None else now) + ttl_s)
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers(
    stun_urls: list[str], turn_urls: list[str], turn_secret: str, user: str, ttl_s: int, now: float | None = None
) -> list[IceServer]:
    """The ``iceServers`` for ``user``: STUN as configured; TURN only when a secret is set."""
    servers: list[IceServer] = []
    if stun_urls:
        servers.append(IceServer(urls=list(stun_urls)))
    if turn_urls and turn_secret:
        username, password = turn_credentials(turn_secret, user, ttl_s, now)
        servers.append(IceServer(urls=list(turn_urls), username=username, credential=password))
    return servers
