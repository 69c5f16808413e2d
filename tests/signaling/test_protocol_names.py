"""The message names the pages use are the protocol's, read from the JavaScript under web/static.

What a page sends: ``type: "..."`` in an object (``ws.send({ type: "join", ... })``).  What a page
handles: the keys of a ``handlers`` table (``const handlers = { welcome(msg) {...}, ... }``),
``msg.type === "..."``, ``case "..."`` in a ``switch (msg.type)``, and the raw ping probe's
``includes('"pong"')``.  Every name sent must be one the server accepts, every name handled one the
server sends, and every name the server sends must be handled by some page, but for
:data:`NOT_HANDLED`.  :class:`~signaling.protocol.MessageType` names exactly these.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from signaling import protocol as p
from signaling.helpers import TYPES as HELPER_TYPES
from signaling.helpers import HelperState
from signaling.hold import KeepPlace, PlaceKept, PlaceNotice
from signaling.witness.relay import TYPES as WITNESS_TYPES
from signaling.witness.relay import WitnessSdp, WitnessState

STATIC = Path(__file__).resolve().parents[2] / "web" / "static"

#: ``type: "..."`` in page code that is no socket message, and why.
NOT_MESSAGES: dict[str, str] = {
    **dict.fromkeys(
        ("button", "checkbox", "file", "number", "password", "tel", "text", "email", "search", "submit", "radio"),
        "an HTML element's type attribute (h(\"input\", { type: ... }))",
    ),
    **dict.fromkeys(("offer", "answer", "rollback", "pranswer"), "an RTCSessionDescription's type, not a message"),
}

#: Names the server sends that no page handles, and why.  None today: every one is shown somewhere.
NOT_HANDLED: dict[str, str] = {}


def _model_type(model: type[BaseModel]) -> str:
    return str(model.model_fields["type"].default)


#: What the server accepts: the core protocol and the extensions' client messages.
CLIENT_NAMES = frozenset({*p.CLIENT_TYPES, *HELPER_TYPES, *WITNESS_TYPES, _model_type(KeepPlace)})
#: What the server sends: the core protocol (relayed messages included) and the extensions'.
SERVER_NAMES = frozenset({
    *p.SERVER_TYPES,
    *(_model_type(m) for m in (HelperState, WitnessSdp, WitnessState, PlaceKept, PlaceNotice)),
})

_SENT = re.compile(r"""\btype:\s*["']([A-Za-z0-9_]+)["']""")
_TABLE = re.compile(r"^(?P<indent>[ \t]*)(?:export\s+)?(?:const|let|var)\s+\w*[Hh]andlers\s*=\s*\{\s*$")
_KEY = re.compile(r"""(?:async\s+)?["']?([A-Za-z0-9_]+)["']?\s*(?:\(|:)""")
_COMPARED = re.compile(r"""(?<!typeof\s)\b(?:msg|message)\.type\s*===?\s*["']([A-Za-z0-9_]+)["']""")
_SWITCH = re.compile(r"switch\s*\(\s*(?:msg|message)\.type\s*\)\s*\{")
_CASE = re.compile(r"""\bcase\s+["']([A-Za-z0-9_]+)["']\s*:""")
_PROBED = re.compile(r"""\.includes\(\s*'"([A-Za-z0-9_]+)"'\s*\)""")


def sent_names(source: str) -> set[str]:
    """The ``type`` names of the objects a page's code builds, less :data:`NOT_MESSAGES`."""
    return {name for name in _SENT.findall(source) if name not in NOT_MESSAGES}


def _table_keys(lines: list[str], start: int, indent: str) -> set[str]:
    keys: set[str] = set()
    inner = indent + "  "
    for line in lines[start + 1:]:
        if line.startswith(indent + "}"):
            break
        if line.startswith(inner) and not line[len(inner)].isspace():
            key = _KEY.match(line[len(inner):])
            if key:
                keys.add(key.group(1))
    return keys


def _switch_cases(source: str) -> set[str]:
    cases: set[str] = set()
    for match in _SWITCH.finditer(source):
        depth, end = 1, match.end()
        while depth and end < len(source):
            depth += {"{": 1, "}": -1}.get(source[end], 0)
            end += 1
        cases.update(_CASE.findall(source, match.end(), end))
    return cases


def handled_names(source: str) -> set[str]:
    """The message names a page's code handles (handler tables, comparisons, switches, the ping probe)."""
    lines = source.splitlines()
    names: set[str] = set()
    for i, line in enumerate(lines):
        table = _TABLE.match(line)
        if table:
            names |= _table_keys(lines, i, table.group("indent"))
    names.update(_COMPARED.findall(source), _PROBED.findall(source), _switch_cases(source))
    return names


def _pages() -> dict[str, str]:
    return {str(path.relative_to(STATIC)): path.read_text(encoding="utf-8") for path in sorted(STATIC.rglob("*.js"))}


def _by_page(find: object) -> dict[str, set[str]]:
    assert callable(find)
    return {page: found for page, source in _pages().items() if (found := find(source))}


def test_pages_send_only_names_the_server_accepts() -> None:
    sent = _by_page(sent_names)
    assert "hello" in set().union(*sent.values()), "the scan found no socket messages"
    unknown = {page: sorted(names - CLIENT_NAMES) for page, names in sent.items() if names - CLIENT_NAMES}
    assert not unknown, f"pages send message types the server does not accept: {unknown}"


def test_pages_handle_only_names_the_server_sends() -> None:
    handled = _by_page(handled_names)
    assert "welcome" in set().union(*handled.values()), "the scan found no handlers"
    unknown = {page: sorted(names - SERVER_NAMES) for page, names in handled.items() if names - SERVER_NAMES}
    assert not unknown, f"pages handle message types the server never sends: {unknown}"


def test_every_name_the_server_sends_is_handled_by_a_page() -> None:
    handled = set().union(*_by_page(handled_names).values())
    unhandled = sorted(str(name) for name in SERVER_NAMES - handled - NOT_HANDLED.keys())
    assert not unhandled, f"no page handles these server messages: {unhandled}"
    assert not (NOT_HANDLED.keys() & handled), "listed as not handled, but a page handles them: drop them"
    assert NOT_HANDLED.keys() <= SERVER_NAMES, "listed as not handled, but the server does not send them"


def test_message_type_names_every_message_and_nothing_else() -> None:
    assert set(p.MessageType) == CLIENT_NAMES | SERVER_NAMES


@pytest.mark.parametrize(
    ("source", "sent", "handled"),
    [
        ('ws.send({ type: "joinn", care: true });', {"joinn"}, set()),
        ('h("input", { id, type: "number" });\nif (msg.type === "welcom") go();', set(), {"welcom"}),
        ("const handlers = {\n  welcome(msg) {},\n  async call_offerr(msg) {\n    x();\n  },\n  bogus: show,\n};\n",
         set(), {"welcome", "call_offerr", "bogus"}),
        ('switch (msg.type) {\n  case "notice": { a(); break; }\n  case "bogus_type":\n    b();\n}\ncase "other":',
         set(), {"notice", "bogus_type"}),
    ],
)
def test_the_scan_sees_a_misspelt_name(source: str, sent: set[str], handled: set[str]) -> None:
    """The checks above can fail: a name the protocol lacks, wherever it stands, is found."""
    assert sent_names(source) == sent
    assert handled_names(source) == handled
    assert (sent | handled) - CLIENT_NAMES - SERVER_NAMES, "the misspelt name passes for a protocol name"
