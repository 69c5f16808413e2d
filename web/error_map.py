"""One place where the errors of the layers below become HTTP answers.

Each layer raises its own error types (a session refused, a transaction refused, an unreadable image,
a damaged recording...); :data:`ERROR_MAP` says once what each means to a client, and
:func:`domain_error_middleware` answers with it, so a handler need not catch them one by one.  A
handler that means something else by an error (a work order *not found* rather than *in conflict*)
still catches it itself.  Errors not listed stay 500 (a bug), and outages stay with
:mod:`web.availability` (503).  The middleware is the innermost (:mod:`counter.app` adds it last), so
the other middlewares see the answer as if the handler had raised it.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from counter.callbacks import CallbackError
from counter.guidance import GuidanceError
from counter.identity_models import IdentityNotReady
from counter.sessions import SessionError
from counter.smscode import SmsCodeError
from counter.transactions.engine import TxError
from counter.workorders import WorkOrderError
from identity.images import ImageError
from identity.liveness import UnusableReference
from signaling.helpers import InviteError
from signaling.hold import HoldError
from signaling.witness import WitnessError
from signaling.witness.recording import RecordingError
from web.errors import ApiError, Handler


def _sms_code(exc: SmsCodeError) -> ApiError:
    status = 403 if exc.code == "wrong_code" else 409
    return ApiError(status, exc.code, exc.reason, attempts_left=exc.attempts_left)


_INVITE_STATUS = {"invite_unknown": 404, "invite_expired": 410, "invite_used": 410, "invite_revoked": 410}
_CALLBACK_STATUS = {"no_callback": 404, "wrong_status": 409, "not_yours": 403, "bad_time": 400}

#: Error type -> its answer; the first entry matching (``isinstance``) wins, so subclasses go first.
ERROR_MAP: list[tuple[type[Exception], Callable[[Exception], ApiError]]] = [
    (SessionError, lambda e: ApiError(409, e.code, e.reason)),  # type: ignore[attr-defined]
    (SmsCodeError, lambda e: _sms_code(e)),  # type: ignore[arg-type]
    (TxError, lambda e: ApiError(e.status, e.code, e.reason)),  # type: ignore[attr-defined]
    (WorkOrderError, lambda e: ApiError(409, "work_order", str(e))),
    (GuidanceError, lambda e: ApiError(409, "guidance", str(e))),
    (WitnessError, lambda e: ApiError(409, e.code, e.reason)),  # type: ignore[attr-defined]
    (ImageError, lambda e: ApiError(400, "bad_image", str(e))),
    (UnusableReference, lambda e: ApiError(409, "no_reference", str(e))),
    (RecordingError, lambda e: ApiError(410, "unreadable", str(e))),
    (IdentityNotReady, lambda e: ApiError(503, "identity_not_ready", str(e))),
    (InviteError, lambda e: ApiError(_INVITE_STATUS.get(e.code, 410), e.code, e.reason)),  # type: ignore[attr-defined]
    (CallbackError, lambda e: ApiError(_CALLBACK_STATUS.get(e.code, 400), e.code, str(e))),  # type: ignore[attr-defined]
    (HoldError, lambda e: ApiError(410 if e.code == "expired" else 404, e.code, str(e))),  # type: ignore[attr-defined]
]


def as_api_error(exc: Exception) -> ApiError | None:
    """The answer :data:`ERROR_MAP` gives ``exc``, or ``None`` if its type is not listed."""
    for kind, answer in ERROR_MAP:
        if isinstance(exc, kind):
            return answer(exc)
    return None


@web.middleware
async def domain_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer a listed error from the layers below as :data:`ERROR_MAP` says."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        answer = as_api_error(exc)
        if answer is None:
            raise
        raise answer from exc
