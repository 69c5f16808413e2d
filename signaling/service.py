"""The signaling service: connections, the two-lane queue, routing to agents, and in-call relay.

Transport-agnostic: the web layer accepts the WebSocket, resolves who is on it, and feeds text frames
to :meth:`SignalingService.handle`; the service answers through the connection's ``send``.
Routing state lives on the :class:`~signaling.bus.Bus` (shared between nodes); every decision that
changes it is taken under ``bus.lock()``.  Relay messages (SDP, ICE, chat) take no lock.

The service is put together from one part per job, each its own module:

- :mod:`signaling.core`: the node's state, call events, sending on the bus;
- :mod:`signaling.connections`: sockets, hello and who is on them, dispatch, disconnects, extensions;
- :mod:`signaling.presence`: agents' states and the ``presence`` message;
- :mod:`signaling.routing`: the queue, offers, accept, decline, transfer, requeue, hang-up;
- :mod:`signaling.relay`: SDP, ICE, chat and steps between the parties;
- :mod:`signaling.recovery`: start and stop, the timer, resuming after a restart, outages;
- :mod:`signaling.queue_view`: queue status, wait estimates, the supervisor wall's snapshot.
"""

from __future__ import annotations

from signaling.connections import Connection, Connections
from signaling.core import STAFF_ROLES, AgeLookup, CallEvent, CallHook, ChatHook, ChatLine, IceConfig
from signaling.routing import CARE_AGE

__all__ = [
    "CARE_AGE",
    "STAFF_ROLES",
    "AgeLookup",
    "CallEvent",
    "CallHook",
    "ChatHook",
    "ChatLine",
    "Connection",
    "IceConfig",
    "SignalingService",
]


class SignalingService(Connections):
    """Queue, routing and relay for one node; share state with other nodes through ``bus``."""
