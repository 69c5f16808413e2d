"""The customer page as served: strict-CSP clean, small, every module and string present, and in
step with the signaling protocol and the counter API it speaks."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from signaling import protocol as p
from signaling.helpers import TYPES as HELPER_TYPES
from signaling.hold import PlaceKept, PlaceNotice
from signaling.witness.relay import RecordingConsent, WitnessIce, WitnessSdp
from web.counter_api import ROUTES
from web.pages import render

STATIC = Path(__file__).resolve().parents[2] / "web" / "static"
CUSTOMER = STATIC / "customer"
SHARED = STATIC / "shared"
JS = sorted([*CUSTOMER.glob("*.js"), *SHARED.glob("*.js")])


def _imports(path: Path) -> list[Path]:
    text = path.read_text(encoding="utf-8")
    found = re.findall(r'^\s*import\s[^;]*?from\s+"(\.{1,2}/[^"]+)"', text, re.M | re.S)
    found += re.findall(r'^\s*import\s+"(\.{1,2}/[^"]+)"', text, re.M)
    return [(path.parent / rel).resolve() for rel in found]


def _first_load() -> set[Path]:
    """The customer page's stylesheet, main.js and every module it imports, the icons they name."""
    todo = [CUSTOMER / "main.js"]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(_imports(path))
    icons = {CUSTOMER / "icons" / f"{name}.svg" for name in ("video", "senior", "speaker")}
    return seen | icons | {CUSTOMER / "customer.css"}


def _tables() -> dict[str, set[str]]:
    text = (SHARED / "i18n.js").read_text(encoding="utf-8")
    tables = {}
    for name in ("zh", "en"):
        body = re.search(rf"^const {name} = \{{(.*?)^\}};", text, re.M | re.S)
        assert body, f"no {name} table in i18n.js"
        tables[name] = set(re.findall(r'^\s*"([\w.]+)":', body.group(1), re.M))
    return tables


async def test_page_is_served_with_the_strict_csp(app_client: TestClient[Any, Any]) -> None:
    resp = await app_client.get("/customer")
    assert resp.status == 200
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    html = await resp.text()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == [], "inline script: the CSP blocks it"
    assert "<style" not in html and " style=" not in html, "inline style: the CSP blocks it"
    assert 'lang="zh-CN"' in html
    for path in sorted(_first_load()):
        url = "/" + str(path.relative_to(STATIC.parent)).replace("web/", "", 1)
        asset = await app_client.get(url)
        assert asset.status == 200, url
        if path.suffix == ".js":
            assert "javascript" in asset.headers["Content-Type"], "module scripts need a JavaScript MIME type"


def test_modules_resolve_and_build_no_html_from_strings() -> None:
    for path in JS:
        for target in _imports(path):
            assert target.is_file(), f"{path.name} imports missing {target}"
        text = path.read_text(encoding="utf-8")
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text, f"{path.name}: build DOM nodes instead"
        assert "eval(" not in text and "new Function" not in text, f"{path.name}: the CSP forbids eval"
        assert " style=" not in text and ".style." not in text, f"{path.name}: inline styles break the CSP"


def test_first_load_is_under_300_kb() -> None:
    total = len(render("customer").encode()) + sum(path.stat().st_size for path in _first_load())
    assert total < 300_000, f"first load is {total} bytes"


def test_both_languages_have_every_string() -> None:
    tables = _tables()
    assert tables["zh"] == tables["en"], tables["zh"] ^ tables["en"]
    used: set[str] = set()
    for path in JS:
        if path.name == "i18n.js":
            continue
        used |= set(re.findall(r'\bt\("([\w.]+)"', path.read_text(encoding="utf-8")))
    variants = {
        "perm": ["ios", "wechat", "firefox", "android_chrome", "other"],
        "face_cap.hint": ["ok", "dark", "bright", "blur", "closer", "farther", "center"],
        "id_cap.hint": ["ok", "dark", "glare", "blur"],
        "rate": ["1", "2", "3", "4", "5"],
        "live": ["blink", "turn_left", "turn_right", "nod", "open_mouth"],
    }
    for prefix, names in variants.items():
        sep = "_" if prefix.endswith("hint") else "."
        used |= {f"{prefix}{sep}{name}" for name in names}
    assert used - tables["zh"] == set(), "strings used but missing from the tables"


def _page() -> str:
    """The text of the customer page's own modules (main.js and the modules it is split into)."""
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(CUSTOMER.glob("*.js")))


def test_speaks_the_signaling_protocol() -> None:
    main = _page()
    witness = (SHARED / "witness.js").read_text(encoding="utf-8")
    sent = set(re.findall(r'\btype: "(\w+)",\s*(?:call_id|token|care|accepted)\b', main + witness))
    # what the shared signaling client (shared/ws.js) builds: the hello, and each ICE candidate ("ice"
    # unless its type is named)
    assert 'type = "ice"' in (SHARED / "ws.js").read_text(encoding="utf-8")
    if re.search(r"\bws\.hello\(\{ token: ", main):
        sent.add("hello")
    for args in re.findall(r"\biceMessage\(([^)]*)\)", main + witness):
        named = re.search(r'type: "(\w+)"', args)
        sent.add(named.group(1) if named else "ice")
    assert sent, "found no message the page sends"
    client_types = p.CLIENT_TYPES | {m.model_fields["type"].default for m in (RecordingConsent, WitnessSdp, WitnessIce)}
    client_types |= set(HELPER_TYPES)
    assert sent <= client_types, sent - client_types
    assert {"recording_consent", "witness_sdp", "witness_ice"} <= sent, "the page records the call with the witness"
    assert {"hello", "join", "sdp", "ice", "step_result", "hangup"} <= sent
    assert "chat" not in sent, "what the customer types is the service password: to the server only, never chat"
    handlers = re.search(r"const handlers = \{(.*?)^\};", main, re.M | re.S)
    assert handlers
    handled = set(re.findall(r"^  (?:async )?(\w+)\((?:msg)?\) \{", handlers.group(1), re.M))
    server_types = {m.model_fields["type"].default for m in typing.get_args(typing.get_args(p.ServerMessage)[0])}
    server_types |= {"witness_sdp", "witness_state", "helper_state"}
    server_types |= {m.model_fields["type"].default for m in (PlaceKept, PlaceNotice)}  # kept places
    assert handled <= server_types, handled - server_types
    assert {"welcome", "queue_status", "call_started", "sdp", "ice", "push_step", "call_ended"} <= handled
    steps = set(typing.get_args(p.PushStep.model_fields["step"].annotation))
    cases = set(re.findall(r'case "(\w+)":', main))
    assert steps - cases <= {"info", "sign"}, "every pushed step has its own screen (info and sign show text)"


def test_calls_only_counter_api_routes_that_exist() -> None:
    main = _page()
    routes = {r.path for r in ROUTES if r.path.startswith("/api/customer/")}
    assert "/api/customer/counter/transactions/{tid}/confirm" in routes
    assert "/api/customer/counter/rating" in routes and "/api/customer/counter" in routes
    assert 'counterApi("/rating"' in main and "`/transactions/${" in main and 'counterApi("")' in main
    assert "token: state.callToken" in main  # the counter API and the stills go with the call's token
    assert '"X-Customer-Token"' in (SHARED / "api.js").read_text(encoding="utf-8")
