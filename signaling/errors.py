"""The refusal every service raises: a stable ``code`` for programs, a ``reason`` for people."""

from __future__ import annotations


class CodedError(Exception):
    """A request was refused: ``code`` is stable (pages and APIs word it), ``reason`` says what to do."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
