"""Remote fault video guidance on both back-ends: steps pushed, outcome recorded, work order on failure."""

from __future__ import annotations

import pytest

from counter.guidance import SCRIPTS, GuidanceError, GuidanceRuns
from counter.sessions import Level
from counter.transactions.engine import TxStatus
from counter.workorders import WorkOrderStatus
from storage import Database
from tests.counter.txkit import open_kit

MSISDN = "13800138000"


def test_knowledge_base_covers_broadband_tv_and_phone() -> None:
    assert {s.service for s in SCRIPTS.values()} >= {"broadband", "tv", "phone"}
    for script in SCRIPTS.values():
        ids = [s.id for s in script.steps]
        assert len(ids) == len(set(ids)) >= 3, script.code
        assert all(s.zh and s.en for s in script.steps)
        assert script.to_json()["steps"][0]["id"] == ids[0]
    with pytest.raises(KeyError, match="steps: lights, fibre"):
        SCRIPTS["broadband.no_internet"].step("reboot")


async def test_steps_pushed_then_not_solved_opens_work_order(db: Database) -> None:
    async with open_kit(db, MSISDN) as kit:
        session = await kit.session(MSISDN, Level.A1)
        runs = GuidanceRuns(db)
        with pytest.raises(GuidanceError, match=r"no guidance script 'fridge\.cold'"):
            await runs.start(session.id, "fridge.cold")
        assert await runs.current(session.id) is None
        run_id = await runs.start(session.id, "broadband.no_internet")
        shown = await runs.current(session.id)
        assert shown is not None and shown["step"] is None and shown["script"]["code"] == "broadband.no_internet"
        step = await runs.push(run_id, "lights")
        assert "LOS" in step.en
        await runs.push(run_id, "power_cycle")
        shown = await runs.current(session.id)
        assert shown is not None and shown["run_id"] == run_id
        assert shown["step"]["id"] == "power_cycle" and (shown["step"]["n"], shown["step"]["of"]) == (2, 5)
        assert "30" in shown["step"]["zh"]
        with pytest.raises(GuidanceError, match="has no step 'reboot'"):
            await runs.push(run_id, "reboot")
        assert [s["step"] for s in (await runs.get(run_id))["steps"]] == ["lights", "power_cycle"]

        outcome = await kit.run(
            session,
            "fault.guide",
            {
                "script": "broadband.no_internet",
                "run_id": run_id,
                "steps_done": ["lights", "power_cycle"],
                "outcome": "not_solved",
                "open_work_order": True,
            },
        )
        assert outcome.status == TxStatus.DONE, outcome
        order_id = outcome.result["order_id"]
        assert str(order_id) in (outcome.text_zh or "")
        run = await runs.get(run_id)
        assert run["outcome"] == "not_solved" and run["work_order_id"] == order_id and run["finished_at"]
        order = await kit.workorders.get(order_id)
        assert (order.kind, order.category, order.status) == ("guidance", "broadband", WorkOrderStatus.OPEN)
        assert order.account == MSISDN and order.session_id == session.id and "lights, power_cycle" in order.summary
        # Finished: nothing on the customer's screen, no more pushes, the run cannot be finished again.
        assert await runs.current(session.id) is None
        with pytest.raises(GuidanceError, match="is finished"):
            await runs.push(run_id, "test")
        again = await kit.run(
            session, "fault.guide", {"script": "broadband.no_internet", "run_id": run_id, "outcome": "abandoned"}
        )
        assert again.status == TxStatus.REFUSED and "not an open run" in (again.reason or "")
        assert await kit.audit_count(session.id) == 2


async def test_solved_without_account_and_work_order_needs_a_line(db: Database) -> None:
    async with open_kit(db) as kit:
        anonymous = await kit.session(None, Level.A0)
        solved = await kit.run(
            anonymous, "fault.guide", {"script": "tv.no_signal", "steps_done": ["source"], "outcome": "solved"}
        )
        assert solved.status == TxStatus.DONE and solved.result["order_id"] is None
        assert solved.text_en == "Fixed. Thank you for your help."
        run = await GuidanceRuns(db).get(solved.result["run_id"])
        assert run["outcome"] == "solved" and [s["step"] for s in run["steps"]] == ["source"]
        refused = await kit.run(
            anonymous,
            "fault.guide",
            {"script": "tv.no_signal", "outcome": "not_solved", "open_work_order": True},
        )
        assert refused.status == TxStatus.REFUSED and "claim it" in (refused.reason or "")
        bad = await kit.run(anonymous, "fault.guide", {"script": "tv.no_signal", "outcome": "solved",
                                                      "steps_done": ["fibre"]})
        assert bad.status == TxStatus.REFUSED and "not in tv.no_signal" in (bad.reason or "")
        assert await kit.workorders.list() == []
