"""Requests passed on between nodes: only the nodes' shared secret makes one count as passed on by a node."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from counter.appkeys import OWNERS
from counter.config import load_settings
from signaling.bus import InProcessBus
from signaling.owners import Owners
from web.owners import FORWARDED, forwarded, from_node, internal_url


def _request(app: web.Application, value: str | None) -> web.Request:
    headers = {FORWARDED: value} if value is not None else {}
    return make_mocked_request("POST", "/api/customer/identity/still", headers=headers, app=app)


def test_only_the_nodes_secret_skips_the_rate_limits_a_forged_header_only_stops_passing_on() -> None:
    app = web.Application()
    owners = app[OWNERS] = Owners(InProcessBus("n1"))
    owners.secret = "the-nodes-secret"
    assert from_node(_request(app, "the-nodes-secret"))
    assert forwarded(_request(app, "a guess")) and not from_node(_request(app, "a guess"))
    assert not forwarded(_request(app, None)) and not from_node(_request(app, None))
    owners.secret = ""  # one node (no Redis): nothing is ever passed on
    assert not from_node(_request(app, ""))


def test_internal_url_says_where_the_other_nodes_reach_this_one(tmp_path: Path) -> None:
    plain = load_settings(tmp_path / "none.toml",
                          environ={"COUNTER_TLS": "false", "COUNTER_HOST": "127.0.0.1", "COUNTER_PORT": "9000"})
    assert internal_url(plain) == "http://127.0.0.1:9000"
    named = load_settings(tmp_path / "none.toml", environ={"COUNTER_INTERNAL_URL": "https://node2.counter.lan:8443/"})
    assert internal_url(named) == "https://node2.counter.lan:8443"
