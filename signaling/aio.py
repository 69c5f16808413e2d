"""The aiohttp side of signaling: the service's app key and the WebSocket read loop."""

from __future__ import annotations

import logging

from aiohttp import WSMsgType, web

from signaling.service import Connection, SignalingService
from signaling.state import Principal

log = logging.getLogger("signaling.ws")

SIGNALING = web.AppKey("signaling", SignalingService)

#: Frames above this are refused by aiohttp itself (connection closed with 1009); frames between
#: the protocol limit and this get an ``error`` reply and the connection stays open.
HARD_FRAME_LIMIT = 256 * 1024


async def serve_websocket(
    request: web.Request, service: SignalingService, staff: Principal | None
) -> web.WebSocketResponse:
    """Upgrade ``request`` and run the connection until it closes.  ``staff``: who the cookie says."""
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=HARD_FRAME_LIMIT)
    await ws.prepare(request)
    conn = Connection(ws.send_str, ws.close, staff, service.options)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await service.handle(conn, msg.data)
            elif msg.type == WSMsgType.BINARY:
                await service.handle(conn, msg.data)
            elif msg.type == WSMsgType.ERROR:
                log.info("websocket closed with an error: %s", ws.exception())
    finally:
        await service.disconnected(conn)
    return ws
