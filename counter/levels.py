"""The assurance-level rules, in one place: what a session may do at its level, and why not.

Two questions are answered here and nowhere else:

* :func:`transaction_refusal`: may a transaction run in the session now?  The engine's refusal, the
  catalog's ``enabled`` / ``why_not`` and the agent console's text all come from it.
* :func:`step_refusal`: which identity step (service password or SMS code for A1, face check with
  liveness or the agent's attestation for A2, the ID card for A3) is possible next?  Used by
  :meth:`counter.sessions.CounterSessions.raise_level` and by the identity endpoints before they run.

Every answer "no" is a :class:`WhyNot`: a stable code, English and zh-CN words for agent and customer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Protocol

from storage.timeutil import parse_iso, utcnow

#: A2+ proofs older than this are re-checked before a state-changing transaction.
PROOF_MAX_AGE = timedelta(minutes=10)


class Level(IntEnum):
    """Identity assurance levels, ordered: ``Level.A2 > Level.A1``."""

    A0 = 0
    A1 = 1
    A2 = 2
    A3 = 3
    A4 = 4

    def __str__(self) -> str:
        return self.name

    @classmethod
    def parse(cls, text: str) -> Level:
        """``"A2"`` -> ``Level.A2``; raises ``ValueError`` naming the valid ones."""
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(f"unknown level {text!r}; use one of A0, A1, A2, A3, A4") from None


class Method(StrEnum):
    """How a level is reached: each identity step, the level it proves and the path it belongs to."""

    PASSWORD = "password"
    SMS_CODE = "sms_code"
    FACE = "face"
    ATTESTATION = "attestation"
    IDCARD = "idcard"
    IDCARD_ATTESTED = "idcard_attested"

    @property
    def proves(self) -> Level:
        """The highest level this step proves on its own."""
        return _PROVES[self]

    @property
    def text(self) -> str:
        """What the step is, for people."""
        return _TEXT[self]

    @property
    def declined_path(self) -> bool:
        """A step of the path for customers who declined face processing."""
        return self in (Method.ATTESTATION, Method.IDCARD_ATTESTED)


_PROVES = {
    Method.PASSWORD: Level.A1,
    Method.SMS_CODE: Level.A1,
    Method.FACE: Level.A2,
    Method.ATTESTATION: Level.A2,
    Method.IDCARD: Level.A3,
    Method.IDCARD_ATTESTED: Level.A3,
}
_TEXT = {
    Method.PASSWORD: "A1: the line's service password",
    Method.SMS_CODE: "A1: a one-time code sent to the line",
    Method.FACE: "A2: live face matched to the real-name photo, liveness passed (needs face consent)",
    Method.ATTESTATION: "A2: face declined; the agent compared the ID card with the live person",
    Method.IDCARD: "A3: ID card captured, number matches the account, portrait matches the live face",
    Method.IDCARD_ATTESTED: "A3: face declined; ID card captured and its number matches the account",
}


@dataclass(frozen=True)
class WhyNot:
    """Why something is not possible now: a stable code and the reason in English and zh-CN."""

    code: str
    en: str
    zh: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "why_not": self.en, "why_not_zh": self.zh}


class LevelFacts(Protocol):
    """What the rules read of a counter session (:class:`counter.sessions.CounterSession`)."""

    @property
    def open(self) -> bool: ...

    @property
    def live(self) -> bool: ...

    @property
    def account(self) -> str | None: ...

    @property
    def face_consent(self) -> bool | None: ...

    @property
    def level(self) -> Level: ...

    @property
    def level_at(self) -> str | None: ...


class EvidenceFacts(LevelFacts, Protocol):
    """A session with its recorded proofs."""

    def evidence_hashes(self, min_level: Level = Level.A0, subject: str = "holder") -> list[str]: ...


class TxRule(Protocol):
    """What the rules read of a transaction (:class:`counter.transactions.spec.TxSpec`)."""

    @property
    def level(self) -> Level: ...

    @property
    def changes_state(self) -> bool: ...

    @property
    def needs_account(self) -> bool: ...


CLOSED = WhyNot("session_closed", "the session is closed; start a new one", "本次服务已结束")
CALL_ENDED = WhyNot(
    "call_ended", "the call has ended: its identity proofs no longer count", "通话已结束，本次业务未办理"
)
NO_ACCOUNT = WhyNot("no_account", "claim the customer's line first", "请先确认办理的号码")
FACE_DECLINED = WhyNot(
    "face_declined",
    "the customer declined face processing: no face check, liveness or face matching in this session. Use the "
    "attestation path: A1 (service password or SMS code), then the ID card shown in the call, compared with the "
    "person by eye, and attest",
    "客户已拒绝人脸识别：本次服务不做人脸比对和活体检测。请走替代流程：先验证服务密码或短信验证码，"
    "再由坐席比对通话中出示的身份证与本人并确认",
)
FACE_NOT_ASKED = WhyNot(
    "face_consent",
    "the customer has not answered the face-processing question (separate from the camera and recording "
    "consent): ask them first, or use the attestation path if they decline",
    "客户尚未回答是否同意人脸识别（与摄像头和录音授权分开）：请先询问；如客户拒绝，走替代流程",
)
FACE_CONSENTED = WhyNot(
    "face_consented",
    "the customer consented to face processing: use the face check and liveness (attestation is the path for "
    "customers who declined face processing)",
    "客户已同意人脸识别：请做人脸核验和活体检测（坐席核实仅用于拒绝人脸识别的客户）",
)
ATTEST_NEEDS_A1 = WhyNot(
    "a1_first",
    "attestation needs A1 first (service password or one-time code)",
    "坐席核实前请先验证服务密码或短信验证码",
)
ID_NEEDS_A2 = WhyNot(
    "a2_first",
    "the ID card step needs A2 first (face check and liveness)",
    "读取身份证前请先完成人脸核验和活体检测",
)
ID_NEEDS_ATTESTATION = WhyNot(
    "attest_first",
    "face declined: the agent's attestation (A2: the ID card shown compared with the person) comes first, "
    "then the card is read",
    "客户拒绝人脸识别：请先比对身份证与本人并确认（A2），再读取身份证",
)


def document_refusal(document: str, raises: int | None) -> WhyNot | None:
    """Why an ID document of this type cannot raise the level to A3, or ``None`` (it declares A3)."""
    if raises is not None and raises >= Level.A3:
        return None
    return WhyNot(
        "document_not_accepted",
        f"a {document.replace('_', ' ')} is read but is not accepted as proof of identity here: show the "
        "resident ID card",
        "该证件可以读取，但不能作为本业务的身份证明：请出示居民身份证",
    )


def face_processing_refusal(session: LevelFacts) -> WhyNot | None:
    """Why no face may be processed in the session (consent not given), or ``None``."""
    if session.face_consent is True:
        return None
    return FACE_DECLINED if session.face_consent is False else FACE_NOT_ASKED


def effective_level(
    session: LevelFacts, *, for_change: bool, now: datetime | None = None
) -> tuple[Level, WhyNot | None]:
    """The level a transaction may rely on now, and why it is lower than ``session.level`` if it is.

    An A2+ proof older than :data:`PROOF_MAX_AGE` counts only as A1 for state changes.
    """
    if not session.open:
        return Level.A0, CLOSED
    if not session.live:
        return Level.A0, CALL_ENDED
    if for_change and session.level >= Level.A2 and session.level_at is not None:
        age = (now or utcnow()) - parse_iso(session.level_at)
        if age > PROOF_MAX_AGE:
            minutes = int(age.total_seconds() // 60)
            limit = int(PROOF_MAX_AGE.total_seconds() // 60)
            return Level.A1, WhyNot(
                "proof_stale",
                f"the {session.level} identity proof is {minutes} minutes old (limit {limit}): check the "
                "customer's identity again",
                f"身份核验已超过{limit}分钟，请重新核验",
            )
    return session.level, None


def step_refusal(session: LevelFacts, method: Method, *, subject: str = "holder") -> WhyNot | None:
    """Why the identity step ``method`` cannot be taken in the session now, or ``None`` if it can.

    Proofs about another person (``subject`` other than ``holder``) need no account and no order.
    """
    if not session.open:
        return CLOSED
    holder = subject == "holder"
    if holder and session.account is None:
        return NO_ACCOUNT
    if method in (Method.FACE, Method.IDCARD):
        if (refused := face_processing_refusal(session)) is not None:
            return refused
        if method == Method.IDCARD and holder and session.level < Level.A2:
            return ID_NEEDS_A2
    elif method.declined_path:
        if session.face_consent is not False:
            return FACE_CONSENTED if session.face_consent else FACE_NOT_ASKED
        if method == Method.ATTESTATION and holder and session.level < Level.A1:
            return ATTEST_NEEDS_A1
        if method == Method.IDCARD_ATTESTED and holder and session.level < Level.A2:
            return ID_NEEDS_ATTESTATION
    return None


def id_method(session: LevelFacts) -> Method:
    """The ID card step of the session's path: with face matching, or compared by eye (face declined)."""
    return Method.IDCARD if session.face_consent is True else Method.IDCARD_ATTESTED


class Path(StrEnum):
    """The session's way to A2 and A3, by the customer's face-processing answer."""

    FACE = "face"  # consented: face check and liveness, then the ID card with portrait match
    ATTESTATION = "attestation"  # declined: A1, the agent's attestation, then the ID card by number
    ASK_CONSENT = "ask_consent"  # not asked yet


def identity_path(session: LevelFacts) -> Path:
    """Which path the session's identity steps take."""
    if session.face_consent is None:
        return Path.ASK_CONSENT
    return Path.FACE if session.face_consent else Path.ATTESTATION


def _way_to(session: LevelFacts, target: Level) -> tuple[str, str]:
    """What is still to be done to reach ``target`` on the session's path (English, zh-CN)."""
    a1 = ("check the service password or a one-time code sent to the line", "验证服务密码或短信验证码")
    if target <= Level.A1:
        return a1
    if session.face_consent is True:
        a2 = ("match the live face to the real-name photo and pass the liveness check", "完成人脸核验和活体检测")
        a3 = ("capture the ID card (its number must be the holder's, its portrait the face checked)",
              "拍摄身份证（号码须为机主本人，证件照须与核验的人脸一致）")
    elif session.face_consent is False:
        attest = ("compare the ID card shown in the call with the person and attest",
                  "由坐席比对通话中出示的身份证与本人并确认")
        if session.level < Level.A1:
            a2 = (f"face declined: {a1[0]}, then {attest[0]}", f"客户拒绝人脸识别：先{a1[1]}，再{attest[1]}")
        else:
            a2 = (f"face declined: {attest[0]}", f"客户拒绝人脸识别：{attest[1]}")
        a3 = ("read the ID card the customer shows (its number must be the holder's)",
              "读取客户出示的身份证（号码须为机主本人）")
    else:
        a2 = ("ask the customer the face-processing question: face check and liveness if they agree, the "
              "agent's attestation with the ID card (after A1) if they decline",
              "请先询问客户是否同意人脸识别：同意则做人脸核验和活体检测，拒绝则先验证密码再由坐席核实身份证")
        a3 = ("then capture the ID card", "然后拍摄身份证")
    if target == Level.A2 or session.level < Level.A2:
        if target >= Level.A3:
            return f"{a2[0]}, then {a3[0]}", f"{a2[1]}，然后{a3[1]}"
        return a2
    return a3


def transaction_refusal(rule: TxRule, session: LevelFacts, now: datetime | None = None) -> WhyNot | None:
    """Why a transaction needing ``rule.level`` cannot run in the session now, or ``None`` if it can.

    A4 needs the session at A3; the supervisor's approval comes after the request.
    """
    if not session.open:
        return CLOSED
    if not session.live:
        return CALL_ENDED
    if rule.needs_account and session.account is None:
        return NO_ACCOUNT
    needed = min(rule.level, Level.A3)
    level, stale = effective_level(session, for_change=rule.changes_state, now=now)
    if level >= needed:
        return None
    if stale is not None:
        return WhyNot(stale.code, f"needs {rule.level}: {stale.en}", f"此业务需要{rule.level}级核验：{stale.zh}")
    en, zh = _way_to(session, needed)
    return WhyNot("level", f"needs {rule.level}: {en}", f"此业务需要{rule.level}级核验：请{zh}")


def other_person_refusal(session: EvidenceFacts, subject: str, who_en: str, who_zh: str) -> WhyNot | None:
    """Why a second person (e.g. the new holder of a transfer, ``subject`` ``new_holder:<ID number>``)
    is not proven in the session to A3 (face and ID card, or the declined path), or ``None``."""
    if session.evidence_hashes(Level.A3, subject=subject):
        return None
    return WhyNot("other_person", f"{who_en} is not verified in this session: check their face and ID card too (A3)",
                  f"{who_zh}还未在本次通话中完成人脸和身份证核验")


def steps_json(session: LevelFacts) -> dict[str, dict[str, object]]:
    """Each identity step and whether it is possible now (what the console shows, as the server says)."""
    out: dict[str, dict[str, object]] = {}
    for method in Method:
        why = step_refusal(session, method)
        out[method.value] = {"possible": why is None, "proves": str(method.proves),
                             **(why.to_json() if why else {"code": None, "why_not": None, "why_not_zh": None})}
    return out


__all__ = [
    "PROOF_MAX_AGE",
    "Level",
    "LevelFacts",
    "Method",
    "Path",
    "TxRule",
    "WhyNot",
    "document_refusal",
    "effective_level",
    "face_processing_refusal",
    "id_method",
    "identity_path",
    "other_person_refusal",
    "step_refusal",
    "steps_json",
    "transaction_refusal",
]
