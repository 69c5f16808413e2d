from __future__ import annotations

import json
from pathlib import Path

import pytest

from counter.cli import main
from identity import EvidenceStore, IdentityService

from .conftest import FACES


def test_cli_verify(models_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = FACES / "face_recognition/obama/obama.jpg", FACES / "face_recognition/obama/obama1.jpg"
    assert main(["identity", "verify", str(a), str(b), "--models-dir", str(models_dir), "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["decision"] == "match" and body["score"] > body["threshold"]
    other = FACES / "faceonnx/brad_pitt/brad_1.jpg"
    assert main(["identity", "verify", str(a), str(other), "--models-dir", str(models_dir)]) == 1
    assert capsys.readouterr().out.startswith("no_match")


def test_cli_read_id(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["identity", "read-id", str(FACES / "ocr/ocr_test_cn.png"), "--json"]) == 1
    body = json.loads(capsys.readouterr().out)
    assert body["fields"]["number"] == "110101199003071234"
    assert [e["code"] for e in body["errors"]] == ["check_digit"]


async def test_service_keeps_evidence(models_dir: Path, tmp_path: Path) -> None:
    store = EvidenceStore.open(tmp_path / "ev", tmp_path / "master.key")
    service = IdentityService(models_dir, evidence_store=store)
    try:
        live = (FACES / "faceonnx/sarah_paulson/sarah_1.jpg").read_bytes()
        ref = (FACES / "faceonnx/sarah_paulson/sarah_2.jpg").read_bytes()
        checked = await service.verify_face(live, ref, session_id="s1")
        assert checked.result.decision == "match"  # type: ignore[union-attr]
        assert await store.get(checked.evidence[0]) == live
        challenge = service.start_liveness(2)
        frames = [(challenge.issued_at + 0.1 * i, live) for i in range(12)]
        result = await service.evaluate_liveness(challenge.id, frames)
        assert not result.result.passed  # type: ignore[union-attr]
        with pytest.raises(KeyError):
            await service.evaluate_liveness(challenge.id, frames)
    finally:
        service.close()
