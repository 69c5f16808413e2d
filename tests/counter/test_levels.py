"""The level rules of counter/levels.py: one answer for the engine, the catalog and the console."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from counter.levels import Level, Method, WhyNot, identity_path, step_refusal, steps_json, transaction_refusal
from counter.transactions import CATALOG
from storage.timeutil import iso, utcnow


@dataclass(frozen=True)
class Facts:
    """A session as the rules read it."""

    open: bool = True
    live: bool = True
    account: str | None = "13800138000"
    face_consent: bool | None = None
    level: Level = Level.A0
    level_at: str | None = None


def _code(why: WhyNot | None) -> str | None:
    return why.code if why else None


def test_every_step_needs_its_path_and_order() -> None:
    declined = Facts(face_consent=False)
    assert _code(step_refusal(Facts(account=None), Method.PASSWORD)) == "no_account"
    assert step_refusal(declined, Method.PASSWORD) is None
    assert _code(step_refusal(declined, Method.FACE)) == "face_declined"
    assert _code(step_refusal(Facts(), Method.FACE)) == "face_consent"
    assert _code(step_refusal(declined, Method.ATTESTATION)) == "a1_first"
    assert step_refusal(replace(declined, level=Level.A1), Method.ATTESTATION) is None
    assert _code(step_refusal(replace(declined, level=Level.A1), Method.IDCARD_ATTESTED)) == "attest_first"
    consented = Facts(face_consent=True)
    assert step_refusal(consented, Method.FACE) is None
    assert _code(step_refusal(consented, Method.ATTESTATION)) == "face_consented"
    assert _code(step_refusal(consented, Method.IDCARD)) == "a2_first"
    assert step_refusal(replace(consented, level=Level.A2), Method.IDCARD) is None
    # another person's proof (a transfer's new holder) needs no claimed account and no order
    assert step_refusal(Facts(account=None, face_consent=True), Method.IDCARD, subject="new_holder:x") is None
    assert _code(step_refusal(Facts(open=False), Method.PASSWORD)) == "session_closed"
    face = step_refusal(declined, Method.FACE)
    assert face is not None
    assert steps_json(declined)["face"] == {"possible": False, "proves": "A2", "code": "face_declined",
                                            "why_not": face.en, "why_not_zh": face.zh}
    assert identity_path(declined).value == "attestation" and identity_path(Facts()).value == "ask_consent"


def test_the_why_not_of_a_transaction_names_the_next_step_the_server_would_accept() -> None:
    suspend, puk, balance = CATALOG["line.suspend"], CATALOG["puk.query"], CATALOG["balance.query"]
    declined = Facts(face_consent=False, level=Level.A1)
    why = transaction_refusal(suspend, declined)
    assert why is not None and why.code == "level" and why.en.startswith("needs A2: face declined")
    assert "attest" in why.en and "人脸核验" not in why.zh and "身份证" in why.zh
    # the step it names is the one the server allows now
    assert step_refusal(declined, Method.ATTESTATION) is None
    consented = Facts(face_consent=True)
    why = transaction_refusal(suspend, consented)
    assert why is not None and "liveness" in why.en and "password" not in why.en  # A1 is not on the face path
    why = transaction_refusal(puk, replace(consented, level=Level.A2, level_at=iso()))
    assert why is not None and "ID card" in why.en and why.en.startswith("needs A3")
    assert transaction_refusal(balance, Facts(level=Level.A1)) is None
    assert _code(transaction_refusal(balance, Facts(account=None, level=Level.A1))) == "no_account"
    assert _code(transaction_refusal(balance, Facts(open=False, level=Level.A1))) == "session_closed"


def test_an_old_proof_counts_as_a1_for_changes_only() -> None:
    old = Facts(face_consent=True, level=Level.A3, level_at=iso(utcnow() - timedelta(minutes=11)))
    why = transaction_refusal(CATALOG["line.suspend"], old)
    assert why is not None and why.code == "proof_stale" and "11 minutes old" in why.en
    assert transaction_refusal(CATALOG["puk.query"], old) is None  # read-only
    assert transaction_refusal(CATALOG["sim.replace"], replace(old, level_at=iso())) is None  # A4: A3 + approval
