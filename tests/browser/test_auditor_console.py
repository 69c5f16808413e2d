"""The auditor console in Chromium: search by line (audited), a timeline entry's personal data opened
on request (audited, and the view listed for every auditor), the export bundle, verify now."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from counter.proofs import ProofKind
from counter.sessions import Level
from tests.browser.harness import BrowserEnv
from tests.browser.test_journey import staff_page
from tests.counter.txkit import raise_on_proofs
from web.counter_api import ENGINE, SESSIONS

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
