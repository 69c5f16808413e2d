"""Per-route rate limits, per client address and per session, answered with 429 and ``Retry-After``.

Each :class:`Rule` names the requests it covers (method and path pattern) and keeps one token bucket
per client address and one per session (staff cookie, customer join token, or the counter session in
the path).  A request over either bucket gets ``429`` with a JSON error saying when to try again.
Limits are per process: with several nodes behind a balancer each node applies them on its own.

Per-address limits are loose on purpose: mobile customers share carrier-grade NAT addresses, so the
per-session buckets do the fine-grained work.  Rates come from :class:`RateLimits` (defaults here;
``Settings.ratelimit``: ``COUNTER_RATELIMIT_<RULE>=ip_rate/ip_burst[,session_rate/session_burst]`` or
``off`` in the environment, e.g. ``COUNTER_RATELIMIT_LOGIN=0.5/20``).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from aiohttp import web

from counter.appkeys import SETTINGS
from web.errors import Handler, json_error

log = logging.getLogger("web.ratelimit")

CUSTOMER_TOKEN_HEADER = "X-Customer-Token"
STAFF_COOKIE = "rc_session"


@dataclass(frozen=True)
class Limit:
    """``rate`` tokens a second, up to ``burst`` saved."""

    rate: float
    burst: float

    @classmethod
    def parse(cls, text: str) -> Limit:
        rate, burst = (float(x) for x in text.split("/", 1))
        if rate <= 0 or burst < 1:
            raise ValueError(text)
        return cls(rate, burst)


@dataclass(frozen=True)
class Rule:
    """A bucket family: requests matching ``methods`` and ``pattern``, limited per address (``ip``) and
    per session (``session``, ``None``: not per session)."""

    name: str
    methods: frozenset[str]
    pattern: re.Pattern[str]
    ip: Limit
    session: Limit | None
    what: str = "requests"

    def matches(self, method: str, path: str) -> bool:
        return method in self.methods and self.pattern.fullmatch(path) is not None


def _rule(name: str, methods: str, pattern: str, ip: str, session: str | None, what: str) -> Rule:
    return Rule(name, frozenset(methods.split()), re.compile(pattern), Limit.parse(ip),
                Limit.parse(session) if session else None, what)


#: The default rules (first match wins): generous for people, tight for scripts guessing passwords
#: or codes, flooding joins or hammering the ONNX models.
DEFAULT_RULES: tuple[Rule, ...] = (
    _rule("login", "POST", r"/api/auth/login", "1/30", None, "login attempts"),
    _rule("join", "POST", r"/api/customer/join|/api/helper/start", "2/60", None, "queue joins"),
    _rule("ws", "GET", r"/ws", "5/100", "1/20", "signaling connections"),
    _rule("identity", "POST", r"/api/counter/sessions/[^/]+/identity(/.*)?|/api/customer/identity/.*",
          "5/100", "1/30", "identity checks"),
    _rule("verify", "POST", r"/api/counter/sessions/[^/]+/(sms-code|verify-sms-code|verify-password)",
          "1/30", "0.2/8", "verification attempts"),
    _rule("api", "POST PUT PATCH DELETE", r"/api/.*", "20/300", "5/100", "API calls"),
)


@dataclass
class _Bucket:
    tokens: float
    last: float
    limit: Limit


@dataclass
class RateLimits:
    """The rules in force and their buckets."""

    rules: tuple[Rule, ...] = DEFAULT_RULES
    max_buckets: int = 100_000
    _buckets: dict[tuple[str, str], _Bucket] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, given: Mapping[str, str]) -> RateLimits:
        """Defaults, with ``{rule name: "rate/burst[,rate/burst]"}`` applied (``off`` disables a rule)."""
        unknown = set(given) - {rule.name for rule in DEFAULT_RULES}
        if unknown:
            raise ValueError(f"COUNTER_RATELIMIT_{sorted(unknown)[0].upper()}: no such rule; the rules are "
                             + ", ".join(rule.name for rule in DEFAULT_RULES))
        rules = []
        for rule in DEFAULT_RULES:
            raw = given.get(rule.name)
            if raw is None:
                rules.append(rule)
                continue
            if raw.strip().lower() == "off":
                continue
            try:
                ip, _, session = raw.partition(",")
                rules.append(replace(rule, ip=Limit.parse(ip), session=Limit.parse(session) if session else None))
            except ValueError:
                raise ValueError(
                    f"COUNTER_RATELIMIT_{rule.name.upper()}={raw!r}: write ip_rate/ip_burst[,session_rate/"
                    "session_burst] with rates > 0 and bursts >= 1, e.g. 2/60,1/20; or off"
                ) from None
        return cls(tuple(rules))

    def rule_for(self, method: str, path: str) -> Rule | None:
        for rule in self.rules:
            if rule.matches(method, path):
                return rule
        return None

    def take(self, rule: Rule, limit: Limit, key: str, now: float | None = None) -> float:
        """Spend a token from ``key``'s bucket of ``rule``; 0 if allowed, else seconds until one is there."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get((rule.name, key))
        if bucket is None:
            if len(self._buckets) >= self.max_buckets:
                self._evict(now)
            bucket = self._buckets[(rule.name, key)] = _Bucket(limit.burst, now, limit)
        bucket.tokens = min(limit.burst, bucket.tokens + (now - bucket.last) * limit.rate)
        bucket.last = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / limit.rate

    def _evict(self, now: float) -> None:
        """Forget full buckets (idle long enough to have refilled); the oldest half if none are."""
        full = [
            k for k, b in self._buckets.items() if b.tokens + (now - b.last) * b.limit.rate >= b.limit.burst
        ]
        if not full:
            full = sorted(self._buckets, key=lambda k: self._buckets[k].last)[: len(self._buckets) // 2]
        for key in full:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


RATE_LIMITS = web.AppKey("rate_limits", RateLimits)
#: Requests these say yes to are not counted (one node passing a request on to another: counted there).
RATE_LIMIT_EXEMPT = web.AppKey("rate_limit_exempt", list[Callable[[web.Request], bool]])


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
TRUSTED_PROXIES = web.AppKey("trusted_proxies", tuple[Network, ...])


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def client_address(request: web.Request) -> str:
    """The client's address: the peer, or, when the peer is a configured load balancer
    (``trusted_proxies``), the nearest address in ``X-Forwarded-For`` that is not one of them.
    From anyone else the header is the client's to forge and is ignored."""
    peer = request.remote or "unknown"
    proxies = request.config_dict.get(TRUSTED_PROXIES, ())
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",") if h.strip()]
    for hop in reversed(hops[-16:]):
        if not _trusted(hop, proxies):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage from the far side of the proxy: the proxy is who we know
    return peer


def session_key(request: web.Request) -> str | None:
    """Who the request speaks for: the staff cookie, the customer's join token, or the counter session."""
    cookie = request.cookies.get(STAFF_COOKIE)
    if cookie:
        return "staff:" + cookie[:64]
    token = request.headers.get(CUSTOMER_TOKEN_HEADER)
    if token:
        return "customer:" + token[:64]
    sid = request.match_info.get("sid")
    return f"session:{sid}" if sid else None


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse requests over their route's per-address or per-session bucket with 429 + Retry-After."""
    limits = request.app[RATE_LIMITS]
    rule = limits.rule_for(request.method, request.path)
    if rule is not None and any(exempt(request) for exempt in request.app.get(RATE_LIMIT_EXEMPT, ())):
        rule = None
    if rule is not None:
        wait = limits.take(rule, rule.ip, f"ip:{client_address(request)}")
        session = session_key(request) if rule.session is not None else None
        if rule.session is not None and session is not None:
            wait = max(wait, limits.take(rule, rule.session, session))
        if wait > 0:
            log.info("rate limited: %s %s (rule %s)", request.method, request.path, rule.name)
            retry = max(1, math.ceil(wait))
            response = json_error(
                429, "rate_limited", f"too many {rule.what}; try again in {retry} s", retry_after_s=retry,
                limit=rule.name,
            )
            response.headers["Retry-After"] = str(retry)
            return response
    return await handler(request)


def setup(app: web.Application) -> None:
    """Put the limits on the app (``RATE_LIMITS``) and the middleware in front of the handlers."""

    app[RATE_LIMITS] = RateLimits.from_settings(app[SETTINGS].ratelimit)
    app[RATE_LIMIT_EXEMPT] = []
    app[TRUSTED_PROXIES] = tuple(ipaddress.ip_network(n, strict=False) for n in app[SETTINGS].trusted_proxies)
    app.middlewares.append(rate_limit_middleware)
