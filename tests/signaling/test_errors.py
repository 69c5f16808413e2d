"""The shared refusal: its code and reason, and the refusals built on it."""

from __future__ import annotations

from signaling.errors import CodedError
from signaling.helpers import InviteError


def test_a_refusal_carries_its_code_and_reason() -> None:
    exc = CodedError("expired", "ask for a new link")
    assert (exc.code, exc.reason, str(exc)) == ("expired", "ask for a new link", "ask for a new link")


def test_an_invite_refusal_is_a_coded_error() -> None:
    exc = InviteError("used", "already used")
    assert isinstance(exc, CodedError) and (exc.code, exc.reason) == ("used", "already used")
