"""Remote fault video guidance: a small knowledge base of step-by-step scripts.

The agent walks the customer through a script on video and pushes each step to the customer's
screen (:class:`GuidanceRuns`); the outcome is recorded by the ``fault.guide`` transaction, which
may open a work order when the fault is not solved in the call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from storage import Database, Executor
from storage.timeutil import iso


@dataclass(frozen=True)
class Step:
    id: str
    zh: str
    en: str


@dataclass(frozen=True)
class Script:
    code: str
    service: str
    title_zh: str
    title_en: str
    steps: tuple[Step, ...]

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(f"script {self.code} has no step {step_id!r}; steps: {', '.join(s.id for s in self.steps)}")

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "service": self.service,
            "title_zh": self.title_zh,
            "title_en": self.title_en,
            "steps": [{"id": s.id, "zh": s.zh, "en": s.en} for s in self.steps],
        }


def _script(code: str, service: str, zh: str, en: str, *steps: tuple[str, str, str]) -> Script:
    return Script(code, service, zh, en, tuple(Step(*s) for s in steps))


SCRIPTS: dict[str, Script] = {
    s.code: s
    for s in (
        _script(
            "broadband.no_internet",
            "broadband",
            "宽带无法上网",
            "Broadband: no internet",
            (
                "lights",
                "请看光猫上的指示灯，把镜头对准它。“光信号”灯是红色的吗？",
                "Show the fibre modem's lights to the camera. Is the 'LOS' light red?",
            ),
            (
                "fibre",
                "请检查光猫背面的细光纤是否插紧，不要弯折。",
                "Check the thin fibre cable at the back is firmly in, not bent.",
            ),
            (
                "power_cycle",
                "请拔掉光猫和路由器电源，等30秒再插上。",
                "Unplug the modem and router, wait 30 seconds, plug back in.",
            ),
            ("wait", "请等待两分钟，直到“网络”灯变绿。", "Wait two minutes until the 'Internet' light turns green."),
            (
                "test",
                "请用手机连接家里的无线网，打开一个网页试试。",
                "Connect your phone to the home Wi-Fi and open a web page.",
            ),
        ),
        _script(
            "tv.no_signal",
            "tv",
            "电视机顶盒无信号",
            "TV box: no signal",
            ("source", "请用电视遥控器按“信号源”，选择HDMI。", "On the TV remote press 'Source' and choose HDMI."),
            (
                "cable",
                "请检查机顶盒与电视之间的HDMI线是否插紧。",
                "Check the HDMI cable between the box and the TV is firmly in.",
            ),
            ("restart", "请拔掉机顶盒电源，等10秒再插上。", "Unplug the TV box, wait 10 seconds, plug it back in."),
            ("network", "请看机顶盒的网线是否连着光猫。", "Check the TV box's network cable goes to the modem."),
            ("test", "请用机顶盒遥控器打开一个频道。", "Open a channel with the TV box remote."),
        ),
        _script(
            "phone.mobile_data",
            "phone",
            "手机无法上网（移动数据设置）",
            "Phone: mobile data not working",
            (
                "toggle",
                "请从屏幕顶部往下滑，打开“移动数据”。",
                "Swipe down from the top of the screen and turn on 'Mobile data'.",
            ),
            ("airplane", "请打开“飞行模式”，等5秒再关闭。", "Turn on 'Airplane mode', wait 5 seconds, turn it off."),
            (
                "apn",
                "请打开“设置-移动网络-接入点名称”，选择默认接入点。",
                "Open Settings > Mobile network > Access point names and choose the default.",
            ),
            ("restart", "请长按电源键，重新启动手机。", "Hold the power button and restart the phone."),
            ("test", "请关闭无线网，打开一个网页试试。", "Turn off Wi-Fi and open a web page."),
        ),
        _script(
            "phone.volte",
            "phone",
            "通话质量差（高清通话设置）",
            "Phone: poor call quality (VoLTE)",
            ("settings", "请打开“设置-移动网络”。", "Open Settings > Mobile network."),
            ("volte", "请打开“VoLTE高清通话”开关。", "Turn on 'VoLTE HD calls'."),
            ("restart", "请重新启动手机。", "Restart the phone."),
            ("test", "请拨打一个电话试试声音。", "Make a call to test the sound."),
        ),
    )
}


class GuidanceError(Exception):
    """A guidance step could not be recorded; the message says why."""


class GuidanceRuns:
    """Guidance runs in a call: the steps pushed to the customer's screen, and the outcome."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def start(self, session_id: str, script: str) -> int:
        if script not in SCRIPTS:
            raise GuidanceError(f"no guidance script {script!r}; scripts: {', '.join(SCRIPTS)}")
        run_id = await self.db.fetchval(
            "INSERT INTO guidance_runs (session_id, script, started_at) VALUES ($1, $2, $3) RETURNING id",
            session_id,
            script,
            iso(),
        )
        return int(run_id)

    async def get(self, run_id: int) -> dict[str, Any]:
        row = await self.db.fetchrow("SELECT * FROM guidance_runs WHERE id = $1", run_id)
        if row is None:
            raise GuidanceError(f"no guidance run #{run_id}")
        row["steps"] = json.loads(row["steps"])
        return row

    async def push(self, run_id: int, step_id: str) -> Step:
        """Record that the agent pushed ``step_id`` to the customer's screen; return the step."""
        run = await self.get(run_id)
        if run["finished_at"] is not None:
            raise GuidanceError(f"guidance run #{run_id} is finished")
        try:
            step = SCRIPTS[run["script"]].step(step_id)
        except KeyError as exc:
            raise GuidanceError(str(exc.args[0])) from exc
        steps = [*run["steps"], {"step": step_id, "at": iso()}]
        await self.db.execute("UPDATE guidance_runs SET steps = $2 WHERE id = $1", run_id, json.dumps(steps))
        return step

    async def current(self, session_id: str) -> dict[str, Any] | None:
        """The step on the customer's screen now: the last one pushed in the session's open run."""
        row = await self.db.fetchrow(
            "SELECT id, script, steps FROM guidance_runs WHERE session_id = $1 AND finished_at IS NULL"
            " ORDER BY id DESC LIMIT 1",
            session_id,
        )
        if row is None:
            return None
        steps = json.loads(row["steps"])
        script = SCRIPTS[row["script"]]
        if not steps:
            return {"run_id": row["id"], "script": script.to_json(), "step": None}
        step = script.step(steps[-1]["step"])
        return {
            "run_id": row["id"],
            "title_zh": script.title_zh,
            "title_en": script.title_en,
            "step": {"id": step.id, "zh": step.zh, "en": step.en, "n": len(steps), "of": len(script.steps)},
        }

    @staticmethod
    async def finish(
        ex: Executor,
        session_id: str,
        script: str,
        run_id: int | None,
        steps: list[str],
        outcome: str,
        work_order_id: int | None,
    ) -> int:
        """Record the outcome (inside the caller's transaction); return the run id."""
        now = iso()
        if run_id is None:
            run_id = int(
                await ex.fetchval(
                    "INSERT INTO guidance_runs (session_id, script, steps, started_at) VALUES ($1, $2, $3, $4)"
                    " RETURNING id",
                    session_id,
                    script,
                    json.dumps([{"step": s, "at": now} for s in steps]),
                    now,
                )
            )
        changed = await ex.execute(
            "UPDATE guidance_runs SET outcome = $3, work_order_id = $4, finished_at = $5"
            " WHERE id = $1 AND session_id = $2 AND finished_at IS NULL",
            run_id,
            session_id,
            outcome,
            work_order_id,
            now,
        )
        if changed != 1:
            raise GuidanceError(f"guidance run #{run_id} is not an open run of this session")
        return run_id
