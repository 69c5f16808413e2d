"""Identity checks for the agent console, on the current counter session.

Face check (live frame from the witness, or an uploaded still) against the account's real-name
photo; active liveness challenge evaluated on frames the witness takes from the live video; ID card
capture (upload, live frame, or a still the customer's page sent) whose number must match the
account and whose portrait must match the face of this session's last matching face check (never
the current live frame: while the card is held up, that is the card itself); the agent's
attestation when the customer declined face processing.  Every image is stored encrypted in the
identity evidence store and referenced by sha256 in the audit entry (``identity.face_check``,
``identity.liveness``, ``identity.id_capture``, ``identity.attestation``); results raise the session's assurance level
(A2: face match and liveness in this session; A3: A2 and the ID card).  Face templates are never
logged.  The models are loaded once, in an executor, when the app starts (:mod:`counter.app`); until
then (or if a model file is missing) the endpoints answer 503 and ``/readyz`` says why.

The checks are :mod:`web.identity_checks`; the evidence viewer and the customer's stills
:mod:`web.identity_evidence`; what they share :mod:`web.identity_common`.
"""

from __future__ import annotations

from aiohttp import web

from web import identity_checks, identity_evidence


def setup(app: web.Application) -> None:
    """The identity routes (each answered by the node that owns the call's media)."""
    app.router.add_routes(identity_checks.routes)
    app.router.add_routes(identity_evidence.routes)
