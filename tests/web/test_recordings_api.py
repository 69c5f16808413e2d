"""Playback tickets (web/recordings_api.py): sealed, so that any node of an installation checks one
that another node issued (behind a balancer each segment request may reach another node)."""

from __future__ import annotations

import time

from web.recordings_api import Ticket, Tickets


def test_a_ticket_from_one_node_is_good_on_another_and_nothing_else_is() -> None:
    master = b"m" * 32
    issued = Tickets(master).issue(Ticket("rec-1", "audit1", time.time() + 60))
    other_node = Tickets(master)
    ticket = other_node.check(issued)
    assert ticket is not None and (ticket.recording_id, ticket.user) == ("rec-1", "audit1")
    payload, _, mac = issued.partition(".")
    forged = Tickets(master).issue(Ticket("rec-2", "audit1", time.time() + 60)).split(".")[0] + "." + mac
    assert other_node.check(forged) is None, "another recording under this ticket's seal"
    assert Tickets(b"x" * 32).check(issued) is None, "another installation's key"
    assert other_node.check(Tickets(master).issue(Ticket("rec-1", "audit1", time.time() - 1))) is None
    for garbage in ("", ".", "abc", payload, issued + "x", "é" * 600):
        assert other_node.check(garbage) is None, garbage
