"""The auditor console in Chromium: search by line (audited), a timeline entry's personal data opened
on request (audited, and the view listed for every auditor), the export bundle, verify now; the
checkpoints the console keeps catch a rolled-back and a rewritten database."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from aiohttp import web

from counter.appkeys import DB, ENGINE, SESSIONS, SETTINGS
from counter.audit import AUDIT, AuditEvent, open_audit_log
from counter.config import load_settings
from counter.proofs import ProofKind
from counter.sessions import Level
from tests.browser.harness import BrowserEnv
from tests.browser.staff import staff_page
from tests.counter.audit.conftest import roll_back
from tests.counter.txkit import raise_on_proofs

LINE = "13600136000"
EMAIL = "new-address@example.cn"


async def contact_change(env: BrowserEnv, call_id: str) -> int:
    """A confirmed contact.update (its e-mail is personal data in the audit entry), set up in-process."""
    assert env.app is not None
    sessions = env.app[SESSIONS]
    await sessions.open(call_id, "agent2")
    await sessions.claim_account(call_id, LINE)
    await sessions.set_face_consent(call_id, True)
    await raise_on_proofs(sessions, call_id, Level.A2, "face", ProofKind.FACE_MATCH, ProofKind.LIVENESS,
                          recorded_by="agent2")
    engine = env.app[ENGINE]
    outcome = await engine.request(call_id, "contact.update", {"email": EMAIL}, f"{call_id}-k", "agent2")
    outcome = await engine.confirm(outcome.id, call_id, True)
    assert outcome.status.value == "done", outcome
    assert outcome.audit_seq is not None
    return outcome.audit_seq


def test_auditor_search_personal_view_export_verify(env: BrowserEnv, tmp_path: Path) -> None:
    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        seq = await contact_change(env, "audit-ui-1")
        aud = await staff_page(env, "audit1", "audit1-demo", "/auditor")
        await aud.fill("#q-account", LINE)
        await aud.click("#btn-search")
        await aud.wait_for_selector(f"#results tr[data-seq='{seq}']")
        out["found"] = await aud.eval_on_selector_all("#results tr", "rows => rows.map(r => r.dataset.action)")
        await aud.click(f"#results tr[data-seq='{seq}'] a.session-link")
        entry = f"#timeline li[data-seq='{seq}']"
        await aud.wait_for_selector(entry)
        out["before"] = await aud.text_content(entry)
        await aud.click(f"{entry} .personal-btn")
        await aud.wait_for_selector(f"{entry} pre.personal")
        out["personal"] = await aud.text_content(f"{entry} pre.personal")
        out["views"] = await aud.text_content("#views")
        async with aud.expect_download() as info:
            await aud.click("#btn-export")
        download = await info.value
        path = tmp_path / "bundle.json"
        await download.save_as(str(path))
        out["bundle"] = json.loads(path.read_text())
        await aud.click("#btn-verify")
        await aud.wait_for_selector("body[data-verified]")
        out["verified"] = await aud.evaluate("() => document.body.dataset.verified")
        await aud.context.close()
        env.contexts.remove(aud.context)
        return out

    r = env.run(scenario())
    # the line's entries: the level its holder proved (one entry) and the change made on it
    assert r["found"] == ["session.level", "transaction.contact.update"], r["found"]
    assert EMAIL not in r["before"], "personal data is shown only on request"
    assert EMAIL in r["personal"]
    assert "auditor.view_record" in r["views"] and "auditor.search" in r["views"], r["views"]
    assert r["bundle"]["entries"] and "checkpoint" in json.dumps(r["bundle"])[:100000]
    assert r["verified"] == "ok"


async def _grow(app: web.Application, n: int, tag: str) -> int:
    for i in range(n):
        await app[AUDIT].append(AuditEvent("transaction.bill.query", "agent", "agent1", details={"i": i, "tag": tag}))
    cp = await app[AUDIT].flush()
    assert cp is not None
    return cp.tree_size


async def _restored(app: web.Application, size: int) -> None:
    """The database restored from a copy of ``size`` entries, and the service started again on it."""
    await app[AUDIT].close()
    await roll_back(app[DB], size)
    with warnings.catch_warnings():  # a started app's state changes only in this test
        warnings.simplefilter("ignore", DeprecationWarning)
        app[AUDIT] = await open_audit_log(app[DB], app[SETTINGS])


def test_kept_checkpoints_show_a_rollback_and_a_fork(env: BrowserEnv, tmp_path: Path) -> None:
    """A log of its own (rolled back and rewritten here), on the session's Chromium."""
    from counter.app import build_app

    settings = load_settings(
        config_file=tmp_path / "none.toml", environ={}, tls=False, host="127.0.0.1", port=8443,
        data_dir=tmp_path / "data", cert_dir=tmp_path / "certs", require_recording=False, audit_purge_interval_s=0,
    )

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        app = await build_app(settings)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        own = BrowserEnv(env.iso, base_url=f"http://{host}:{port}", browser=env.browser)
        try:
            earlier = await _grow(app, 3, "a")
            await _grow(app, 3, "a")
            aud = await staff_page(own, "audit1", "audit1-demo", "/auditor")
            await aud.wait_for_selector("body[data-ready='1'][data-kept='1']")
            cp = await app[AUDIT].checkpoint_at(earlier)
            assert cp is not None
            await aud.fill("#kept-paste", "not a checkpoint")
            await aud.click("#btn-keep")
            await aud.fill("#kept-paste", cp.signed_note(app[AUDIT].signer.public_key))
            await aud.click("#btn-keep")  # one the auditor kept before, pasted
            await aud.wait_for_selector("body[data-kept='2']")
            out["vkey"] = await aud.input_value("#log-vkey")
            out["origin"] = await aud.text_content("#log-origin")
            out["kept"] = await aud.evaluate("() => JSON.parse(localStorage.getItem('rc.audit.kept'))")
            out["seen"] = app[AUDIT].latest_checkpoint()
            await _restored(app, earlier)
            await aud.click("#btn-verify")
            await aud.wait_for_selector("#verify-alert[data-kind]:not([hidden])")
            out["rollback"] = await aud.get_attribute("#verify-alert", "data-kind")
            out["rollback_text"] = await aud.text_content("#verify-alert")
            # rewritten past what the auditor saw; the next visit still has the kept checkpoint
            await _grow(app, 8, "b")
            await aud.reload()
            await aud.wait_for_selector("body[data-ready='1']")
            await aud.click("#btn-verify")
            await aud.wait_for_selector("#verify-alert[data-kind]:not([hidden])")
            out["fork"] = await aud.get_attribute("#verify-alert", "data-kind")
            out["fork_text"] = await aud.text_content("#verify-alert")
        finally:
            for ctx in own.contexts:
                await ctx.close()
            await runner.cleanup()
        return out

    r = env.run(scenario())
    seen = r["seen"]
    assert r["vkey"].startswith(f"{seen.origin}+") and r["origin"] == seen.origin
    assert [(k["size"], k["how"]) for k in r["kept"]] == [(seen.tree_size, "seen"), (3, "pasted")], r["kept"]
    assert r["rollback"] == "rollback" and "ROLLBACK" in r["rollback_text"], r["rollback_text"]
    assert r["fork"] == "fork" and "FORK" in r["fork_text"], r["fork_text"]
