"""Where a transaction request stands (:class:`TxOutcome`, read from its ``tx_requests`` row), and what a
done one's result and audit entry say: staff get the result with its secrets withheld, the customer's
own screen gets them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from counter.audit import AuditEvent
from counter.sessions import CounterSession
from counter.transactions.spec import CATALOG, TxSpec
from counter.transactions.wording import confirm_words, secret_json
from storage import Row


class TxStatus(StrEnum):
    """Where a request stands."""

    PENDING = "pending"  # waiting for the customer's confirmation and/or the supervisor's approval
    RUNNING = "running"
    DONE = "done"
    REFUSED = "refused"
    FAILED = "failed"
    DECLINED = "declined"  # the customer said no on their screen


FINAL = {TxStatus.DONE, TxStatus.REFUSED, TxStatus.FAILED, TxStatus.DECLINED}

#: What staff read where a result holds a secret for the customer's eyes only.
SHOWN_TO_CUSTOMER = ("〔显示在客户屏幕〕", "[shown to the customer]")


@dataclass(eq=False)  # compared and hashed by identity, as exceptions are
class TxError(Exception):
    """The request itself cannot be handled (unknown code, unknown request, wrong person)."""

    #: The HTTP status it answers with, a stable code, and the reason in words.
    status: int
    code: str
    reason: str

    def __post_init__(self) -> None:
        super().__init__(self.reason)


@dataclass(frozen=True)
class TxOutcome:
    """Where a transaction request stands; what the agent's and the customer's screens show."""

    id: int
    session_id: str
    code: str
    account: str | None
    status: TxStatus
    needs_confirmation: bool
    needs_approval: bool
    confirmed_at: str | None
    approved_by: str | None
    requested_by: str
    reason: str | None
    reason_zh: str | None
    errors: list[dict[str, Any]]
    result: dict[str, Any]
    text_zh: str | None
    text_en: str | None
    audit_seq: int | None
    created_at: str
    finished_at: str | None
    #: The validated inputs while the request waits (cleared once it ends).
    inputs: dict[str, Any]
    #: For the customer only: the result's secrets and the result in words with them.
    secrets: dict[str, str]
    customer_text_zh: str | None
    customer_text_en: str | None

    def to_json(self, *, for_customer: bool = False) -> dict[str, Any]:
        """The request as staff see it, or (``for_customer``) as the customer's own screen shows it:
        only the customer's answer carries the secrets.  A pending one carries the server's words for
        the confirmation screen (``confirm``)."""
        spec = CATALOG.get(self.code)
        body: dict[str, Any] = {
            "id": self.id,
            "code": self.code,
            "title_zh": spec.title_zh if spec else self.code,
            "title_en": spec.title_en if spec else self.code,
            "status": self.status.value,
            "needs_confirmation": self.needs_confirmation,
            "needs_approval": self.needs_approval,
            "confirmed": self.confirmed_at is not None,
            "approved": self.approved_by is not None,
            "reason": self.reason,
            "reason_zh": self.reason_zh,
            "text_zh": self.text_zh,
            "text_en": self.text_en,
            "shown_to_customer": sorted(self.secrets),
            "created_at": self.created_at,
            "finished_at": self.finished_at,
        }
        if self.status == TxStatus.PENDING and spec is not None:
            body["confirm"] = confirm_words(spec, self.inputs, self.account).to_json()
        if for_customer:
            body.update(
                text_zh=self.customer_text_zh or self.text_zh,
                text_en=self.customer_text_en or self.text_en,
                secrets=[secret_json(name, value) for name, value in sorted(self.secrets.items())],
            )
        else:
            body.update(
                session_id=self.session_id,
                errors=self.errors,
                result=self.result,
                requested_by=self.requested_by,
                approved_by=self.approved_by,
                confirmed_at=self.confirmed_at,
                audit_seq=self.audit_seq,
            )
        return body


def outcome_of(row: Row) -> TxOutcome:
    """The request of a ``tx_requests`` row."""
    result = json.loads(row["result"]) if row["result"] else {}
    customer = result.pop("_customer", {})
    return TxOutcome(
        id=int(row["id"]),
        session_id=row["session_id"],
        code=row["code"],
        account=row["account"],
        status=TxStatus(row["status"]),
        needs_confirmation=bool(row["needs_confirmation"]),
        needs_approval=bool(row["needs_approval"]),
        confirmed_at=row["confirmed_at"],
        approved_by=row["approved_by"],
        requested_by=row["requested_by"],
        reason=row["reason"],
        reason_zh=result.pop("_reason_zh", None),
        errors=result.pop("_errors", []),
        result=result.get("data", {}),
        text_zh=result.get("text_zh"),
        text_en=result.get("text_en"),
        audit_seq=row["audit_seq"],
        created_at=row["created_at"],
        finished_at=row["finished_at"],
        inputs=json.loads(row["inputs"] or "{}"),
        secrets=customer.get("secrets", {}),
        customer_text_zh=customer.get("text_zh"),
        customer_text_en=customer.get("text_en"),
    )



def _format(template: str, values: Mapping[str, Any]) -> str:
    return template.format_map(dict(values))


@dataclass(frozen=True)
class WordedResult:
    """A handler's result in words: for staff with the secrets withheld, for the customer with them."""

    data: dict[str, Any]
    secrets: dict[str, str]
    text_zh: str
    text_en: str
    customer_text_zh: str
    customer_text_en: str
    #: The SMS receipt's text (never with a secret).
    receipt_zh: str

    def record(self) -> dict[str, Any]:
        """What ``tx_requests.result`` keeps (the customer's part until :meth:`forget_secrets`)."""
        customer = {"text_zh": self.customer_text_zh, "text_en": self.customer_text_en, "secrets": self.secrets}
        return {"data": self.data, "text_zh": self.text_zh, "text_en": self.text_en, "_customer": customer}


def worded_result(spec: TxSpec, result: Mapping[str, Any]) -> WordedResult:
    """``spec``'s handler ``result`` worded from its templates, its ``secret_results`` taken out of it."""
    data = dict(result)
    secrets = {k: str(data.pop(k)) for k in sorted(spec.secret_results) if k in data}
    staff_zh = {**data, **{k: SHOWN_TO_CUSTOMER[0] for k in secrets}}
    staff_en = {**data, **{k: SHOWN_TO_CUSTOMER[1] for k in secrets}}
    return WordedResult(
        data=data,
        secrets=secrets,
        text_zh=_format(spec.result_zh, staff_zh),
        text_en=_format(spec.result_en, staff_en),
        customer_text_zh=_format(spec.result_zh, {**data, **secrets}),
        customer_text_en=_format(spec.result_en, {**data, **secrets}),
        receipt_zh=_format(spec.receipt_zh or spec.result_zh, staff_zh),
    )


def audit_event(
    spec: TxSpec,
    session: CounterSession,
    row: Row,
    status: TxStatus,
    reason: str | None,
    inputs: Mapping[str, Any],
    shown: list[str] | None = None,
) -> AuditEvent:
    """The one audit entry of request ``row`` ending ``status``: its inputs (personal ones in the purgeable
    part, secret ones never), the identity evidence relied on, and that secrets were ``shown``, not what."""
    details: dict[str, Any] = {
        "tx_id": int(row["id"]),
        "status": status.value,
        "level_required": str(spec.level),
        "level_reached": str(session.level),
        "level_method": session.level_method,
        "inputs": {
            k: ("***" if k in spec.secret_fields else v) for k, v in inputs.items() if k not in spec.personal_fields
        },
    }
    if session.level_method in ("attestation", "idcard_attested"):
        details["identity_path"] = "face declined, agent attestation"
    if row["confirmed_at"]:
        details["customer_confirmed_at"] = row["confirmed_at"]
    if row["approved_by"]:
        details["approved_by"] = row["approved_by"]
    if shown:
        details["shown_to_customer"] = shown  # that it was shown, never what
    personal = {k: v for k, v in inputs.items() if k in spec.personal_fields}
    outcome = {TxStatus.DONE: "ok", TxStatus.FAILED: "failed"}.get(status, "refused")
    return AuditEvent(
        action=f"transaction.{spec.code}",
        actor_role="agent",
        actor_id=row["requested_by"],
        outcome=outcome,
        session_id=session.id,
        account=row["account"],
        details=details,
        personal=personal,
        evidence=tuple(sorted(set(session.evidence_hashes()))),
        reason=reason,
    )
