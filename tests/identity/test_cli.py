from __future__ import annotations

import json
from pathlib import Path

import pytest

from counter.cli import main
from identity import Challenge, EvidenceStore, IdentityService

from .conftest import FACES, MODELS


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
        # the challenge travels as plain JSON (kept by the caller, evaluable on another node)
        again = Challenge.from_state(json.loads(json.dumps(challenge.state())))
        assert again == challenge
        result = await service.evaluate_liveness(again, frames)
        assert not result.result.passed  # type: ignore[union-attr]
        with pytest.raises(ValueError):
            Challenge.from_state({**challenge.state(), "sequence": ["jump"]})
    finally:
        service.close()


def test_cli_errors_are_one_line_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = FACES / "face_recognition/obama/obama.jpg", FACES / "face_recognition/obama/obama1.jpg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("COUNTER_MODELS_DIR", str(tmp_path / "no-models"))
    monkeypatch.setattr("identity.models.download", _offline)
    assert main(["identity", "verify", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "face_detection_yunet_2023mar.onnx" in err and "COUNTER_MODELS_DIR" in err and "sha256" in err

    monkeypatch.delenv("COUNTER_MODELS_DIR")
    missing = tmp_path / "missing.jpg"
    assert main(["identity", "verify", str(missing), str(b), "--models-dir", str(MODELS)]) == 2
    assert capsys.readouterr().err.strip() == f"counter: cannot read {missing}: No such file or directory"
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not a photo")
    assert main(["identity", "read-id", str(junk)]) == 2
    assert "send a JPEG, PNG or WebP" in capsys.readouterr().err


def _offline(url: str, dest: Path, sha256: str, *, timeout: float = 30.0) -> Path:
    from identity.models import ModelMissingError

    raise ModelMissingError(f"could not download {dest.name} from {url}: no network in this test")
