"""The offline procedure in docs/AUDIT.md works as written (stdlib Python + openssl)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from counter.audit import AuditEvent, AuditLog
from counter.audit.keys import public_pem
from counter.audit.verify import export_bundle
from tests.counter.audit.conftest import audit, signer

__all__ = ["audit", "signer"]  # the audit tests' fixtures, used here

DOC = Path(__file__).parents[2] / "docs" / "AUDIT.md"


def doc_script() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    return next(b for b in blocks if "def root_from_path" in b)


async def run(*cmd: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, cmd, cwd=cwd, capture_output=True, text=True, check=False)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
async def test_documented_offline_check(audit: AuditLog, tmp_path: Path) -> None:
    for i in range(11):
        await audit.append(AuditEvent("call.joined", "customer", f"session:{i}", details={"text": "办理 ✓"}))
    bundle = await export_bundle(audit, 2, 9)
    (tmp_path / "check_bundle.py").write_text(doc_script())
    (tmp_path / "bundle.json").write_text(json.dumps(bundle, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "audit.pem").write_text(public_pem(audit.signer.public_key))

    ok = await run(sys.executable, "check_bundle.py", "bundle.json", cwd=tmp_path)
    assert ok.returncode == 0 and "8 entries are in the tree of size 11" in ok.stdout, ok.stderr
    sig = await run("openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "audit.pem", "-rawin", "-in", "note.txt",
                    "-sigfile", "sig.bin", cwd=tmp_path)
    assert sig.returncode == 0 and "Signature Verified Successfully" in sig.stdout, sig.stdout + sig.stderr

    bundle["entries"][3]["body"] = bundle["entries"][3]["body"].replace("session:5", "session:6")
    (tmp_path / "bundle.json").write_text(json.dumps(bundle, ensure_ascii=False), encoding="utf-8")
    bad = await run(sys.executable, "check_bundle.py", "bundle.json", cwd=tmp_path)
    assert bad.returncode != 0 and "entry 5" in bad.stderr
