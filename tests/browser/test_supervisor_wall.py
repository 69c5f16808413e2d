"""The supervisor wall in Chromium: an A4 request confirmed by the customer waits for a second
person; the supervisor approves it on the wall and it runs."""

from __future__ import annotations

from typing import Any

from counter.appkeys import ENGINE, SESSIONS
from counter.proofs import ProofKind
from counter.sessions import Level
from tests.browser.harness import BrowserEnv
from tests.browser.staff import staff_page
from tests.counter.txkit import raise_on_proofs


async def a4_pending(env: BrowserEnv, call_id: str, agent: str = "agent2") -> int:
    """A sim.replace in agent2's session, confirmed by the customer, awaiting approval (set up in-process)."""
    assert env.app is not None
    sessions = env.app[SESSIONS]
    await sessions.open(call_id, agent)
    await sessions.claim_account(call_id, "13900139000")
    await sessions.set_face_consent(call_id, True)
    await raise_on_proofs(sessions, call_id, Level.A2, "face", ProofKind.FACE_MATCH, ProofKind.LIVENESS,
                          recorded_by=agent)
    await raise_on_proofs(sessions, call_id, Level.A3, "idcard", ProofKind.ID_CARD, ProofKind.FACE_MATCH,
                          recorded_by=agent)
    engine = env.app[ENGINE]
    outcome = await engine.request(call_id, "sim.replace", {"esim": True}, f"{call_id}-k", agent)
    assert outcome.status.value == "pending", outcome
    outcome = await engine.confirm(outcome.id, call_id, True)
    assert outcome.status.value == "pending" and outcome.needs_approval
    return outcome.id


def test_supervisor_approves_a4_on_the_wall(env: BrowserEnv) -> None:
    async def scenario() -> dict[str, Any]:
        assert env.app is not None
        tid = await a4_pending(env, "wall-a4-1")
        sup = await staff_page(env, "super1", "super1-demo", "/supervisor")
        row = f"#approvals tr[data-tx='{tid}']"
        await sup.wait_for_selector(row)
        shown = await sup.text_content(row)
        await sup.click(f"{row} button")
        await sup.wait_for_selector(row, state="detached")
        outcome = await env.app[ENGINE].get(tid)
        kpis = [await el.get_attribute("data-kpi") for el in await sup.query_selector_all("[data-kpi]")]
        staffing = {await el.get_attribute("data-staffing"): await el.text_content()
                    for el in await sup.query_selector_all("[data-staffing]")}
        lanes = [await el.get_attribute("data-kpi-lane") for el in await sup.query_selector_all("[data-kpi-lane]")]
        await sup.context.close()
        env.contexts.remove(sup.context)
        return {"shown": shown, "status": outcome.status.value, "approved_by": outcome.approved_by, "kpis": kpis,
                "staffing": staffing, "lanes": lanes}

    r = env.run(scenario())
    assert "sim.replace" in r["shown"] and "agent2" in r["shown"] and "已确认" in r["shown"], r["shown"]
    assert (r["status"], r["approved_by"]) == ("done", "super1")
    assert r["kpis"] == ["service-level", "abandon", "wait", "handle", "fcr", "csat"]
    # staffing (Erlang C): required vs logged-in per lane; KPIs per lane
    assert set(r["staffing"]) == {"care", "general"} and "logged in" in r["staffing"]["general"], r["staffing"]
    assert r["lanes"] == ["care", "general"]
