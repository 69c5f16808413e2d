"""Tunables of the signaling service (timings, limits), with defaults fit for production.

The composition root builds them from the typed settings (``Settings.signaling``: in ``counter.toml``
a ``[signaling]`` table, in the environment ``COUNTER_SIGNALING_<NAME>``, e.g.
``COUNTER_SIGNALING_OFFER_TIMEOUT_S=5``); tests shorten the timings this way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ENV_PREFIX = "COUNTER_SIGNALING_"


@dataclass(frozen=True)
class SignalingOptions:
    """Timings in seconds, limits in messages or bytes."""

    offer_timeout_s: float = 15.0
    status_interval_s: float = 3.0
    tick_s: float = 0.5
    reconnect_grace_s: float = 60.0
    join_token_ttl_s: float = 900.0
    token_purge_every_s: float = 600.0  # expired join tokens are deleted this often
    presence_ttl_s: float = 15.0
    answer_target_s: float = 15.0
    default_handle_s: float = 300.0
    wrap_up_s: float = 60.0  # after-call work before available by itself (0: none); set from Settings.wrap_up_s
    rate_per_s: float = 50.0
    rate_burst: float = 200.0
    max_message_bytes: int = 64 * 1024
    redis_prefix: str = "rc"

    @classmethod
    def from_values(cls, given: Mapping[str, Any]) -> SignalingOptions:
        """Defaults overridden by ``given`` (names as the fields); a bad name or value names the setting."""
        known = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, object] = {}
        for name, raw in given.items():
            if name not in known:
                raise ValueError(f"{ENV_PREFIX}{name.upper()}: unknown; known: {', '.join(sorted(known))}")
            kind = type(getattr(cls(), name))
            try:
                values[name] = kind(raw)
            except (TypeError, ValueError):
                raise ValueError(f"{ENV_PREFIX}{name.upper()}={raw!r}: expected a {kind.__name__}") from None
        return cls(**values)  # type: ignore[arg-type]
