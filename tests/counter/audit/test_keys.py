"""Checkpoints as C2SP signed notes, checked by Go's ``golang.org/x/mod/sumdb/note`` (Debian's
golang-go and golang-golang-x-mod-dev, built offline from /usr/share/gocode)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from counter.audit import AUDIT, AuditEvent
from counter.audit.keys import Signer, checkpoint_from_note, note_verifier_key, parse_verifier_key

Client = TestClient[Any, Any]
GOCODE = Path("/usr/share/gocode")

DOC = Path(__file__).parents[3] / "docs" / "AUDIT.md"


def doc_verifier() -> str:
    """The Go program of the auditor's procedure in docs/AUDIT.md, as written there."""
    return next(iter(re.findall(r"```go\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)))


@pytest.fixture(scope="module")
def go_verifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("go") is None or not (GOCODE / "src/golang.org/x/mod/sumdb/note").is_dir():
        pytest.skip("Go or golang.org/x/mod is missing: apt-get install golang-go golang-golang-x-mod-dev")
    work = tmp_path_factory.mktemp("gonote")
    (work / "main.go").write_text(doc_verifier())
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": str(GOCODE), "GOPROXY": "off", "GOFLAGS": "",
           "GOCACHE": str(work / "cache"), "CGO_ENABLED": "0"}
    subprocess.run(["go", "build", "-o", str(work / "verify"), "main.go"], cwd=work, env=env, check=True,
                   timeout=300, capture_output=True)
    return work / "verify"


def go_verify(binary: Path, vkey: str, note: Path) -> subprocess.CompletedProcess[str]:
    """Run the Go verifier on a note file."""
    return subprocess.run([binary, vkey, note], capture_output=True, text=True, timeout=30)


def test_verifier_key_round_trips() -> None:
    signer = Signer.generate("example.com/log")
    name, alg, key = parse_verifier_key(signer.verifier_key)
    assert (name, alg, key) == ("example.com/log", 1, signer.public_key)
    cp = signer.sign(3, bytes(32), "2026-12-06T00:00:00+00:00")
    parsed, others = checkpoint_from_note(cp.signed_note(signer.public_key), signer.public_key)
    assert parsed == cp and others == []
    with pytest.raises(ValueError, match="no signature by the log key"):
        checkpoint_from_note(cp.signed_note(signer.public_key), Signer.generate().public_key)


async def test_the_served_checkpoint_verifies_with_go_sumdb_note(
    app_client: Client, go_verifier: Path, tmp_path: Path
) -> None:
    log = app_client.app[AUDIT]  # type: ignore[index]
    await log.append(AuditEvent("transaction.puk.query", "agent", "agent1", account="13811112222"))
    cp = await log.flush()
    resp = await app_client.get("/checkpoint")
    assert resp.status == 200 and resp.content_type == "text/plain"
    note = await resp.text()
    (tmp_path / "cp.note").write_text(note)
    key = await (await app_client.get("/.well-known/audit-key")).json()
    assert key["note_verifier_key"] == note_verifier_key("remote-counter/audit", log.signer.public_key)
    ok = go_verify(go_verifier, key["note_verifier_key"], tmp_path / "cp.note")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout == f"verified by remote-counter/audit\n{cp.note().decode()}"
    # Another key, or one changed byte, is rejected by Go too.
    other = Signer.generate().verifier_key
    bad = go_verify(go_verifier, other, tmp_path / "cp.note")
    assert bad.returncode == 1, bad.stdout
    (tmp_path / "forged.note").write_text(note.replace(f"\n{cp.tree_size}\n", f"\n{cp.tree_size + 1}\n", 1))
    forged = go_verify(go_verifier, key["note_verifier_key"], tmp_path / "forged.note")
    assert forged.returncode == 1 and "rejected" in forged.stdout, forged.stdout
