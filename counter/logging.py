"""Personal data never reaches the logs: ID numbers, phone numbers and face templates are masked.

:func:`install` wraps the process's log-record factory, so every record of every logger (ours,
aiohttp's, the database drivers') is masked once, when it is made, before any handler sees it:

* an 18-character resident ID number keeps its first 4 and last 4 characters: ``3201**********1234``;
* a mainland mobile number (with or without ``+86``, spaces or dashes) keeps 3 + 4: ``138****5678``;
* a run of 8 or more floats (an embedding, a face template, a landmark array) becomes
  ``[<N numbers withheld>]``, and a long base64 run (an encoded template or image) its length only;
* no SQL parameter is ever logged: a deferred call given as an argument (aiosqlite logs
  ``executing functools.partial(<execute>, sql, (params...))`` at DEBUG for every statement) is
  shown by its function's name only, a ``bytes`` argument (an image) by its length, and a driver's
  "invalid input for query argument $N: <value>" loses the value.

The exception text of a record is masked too.  The counter's own code logs pseudonyms and hashes;
this is the net under it, and ``tests/hardening/test_masking.py`` checks a whole flow against it.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import Any

ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{4})\d{10}(\d{3}[\dXx])(?![0-9A-Za-z])")
PHONE = re.compile(r"(?<![0-9A-Za-z])(?:\+?86[ -]?)?(1[3-9]\d)[ -]?(\d{4})[ -]?(\d{4})(?![0-9A-Za-z])")
_FLOAT = r"[-+]?(?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?"
FLOAT_RUN = re.compile(rf"\[?\s*(?:{_FLOAT}(?:\s*,\s*|\s+|\s*(?:\.\.\.)\s*)){{7,}}{_FLOAT}\s*\]?")
BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{256,}={0,2}")
#: asyncpg's DataError names the parameter's value: keep which argument, not what it was.
QUERY_ARGUMENT = re.compile(r"(query argument \$\d+)(?:: [^\n]*)?")


def mask(text: str) -> str:
    """``text`` with ID numbers, phone numbers, float runs and long base64 runs masked."""
    if not text:
        return text
    text = QUERY_ARGUMENT.sub(r"\1: <value withheld>", text)
    text = FLOAT_RUN.sub(_floats, text)
    text = BASE64_RUN.sub(lambda m: f"<{len(m.group())} base64 chars withheld>", text)
    text = ID_NUMBER.sub(lambda m: f"{m.group(1)}**********{m.group(2)}", text)
    return PHONE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)


def _floats(match: re.Match[str]) -> str:
    count = len(re.findall(_FLOAT, match.group()))
    return f"[<{count} numbers withheld>]"


def safe_arg(arg: object) -> object:
    """A log argument that cannot carry SQL parameters or raw bytes: a deferred call (a
    :class:`functools.partial` holding a statement and its parameters) becomes its function's name,
    bytes their length; anything else is returned as it is."""
    if isinstance(arg, functools.partial):
        func = arg.func
        return f"<{getattr(func, '__qualname__', type(func).__name__)}>"
    if isinstance(arg, bytes | bytearray | memoryview):
        return f"<{len(arg)} bytes withheld>"
    return arg


class MaskingFilter(logging.Filter):
    """A filter masking a record in place (for handlers set up outside :func:`install`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        return True


def mask_record(record: logging.LogRecord) -> logging.LogRecord:
    """Render the record's message and exception, masked, into the record itself (idempotent)."""
    if getattr(record, "masked", False):
        return record
    if isinstance(record.args, tuple):
        record.args = tuple(safe_arg(a) for a in record.args)
    elif isinstance(record.args, dict):
        record.args = {k: safe_arg(v) for k, v in record.args.items()}
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: keep what can be shown, masked
        message = f"{record.msg!r} {record.args!r}"
    record.msg = mask(message)
    record.args = None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = mask(record.exc_text)
    if record.stack_info:
        record.stack_info = mask(record.stack_info)
    record.masked = True
    return record


_installed: Callable[..., logging.LogRecord] | None = None


def install() -> None:
    """Mask every log record made in this process from now on (calling it again changes nothing)."""
    global _installed
    current = logging.getLogRecordFactory()
    if getattr(current, "masking", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return mask_record(current(*args, **kwargs))

    factory.masking = True  # type: ignore[attr-defined]
    _installed = current
    logging.setLogRecordFactory(factory)


def uninstall() -> None:
    """Put the record factory back as it was before :func:`install` (tests)."""
    global _installed
    if _installed is not None:
        logging.setLogRecordFactory(_installed)
        _installed = None


def setup(app: object) -> None:
    """App component: masking is on for the whole process."""
    install()
