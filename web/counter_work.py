"""Work beside the call: supervisors' approvals of A4 requests, work orders (supervisors see all,
agents their own), and guidance scripts pushed to the customer's screen."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from counter.appkeys import ENGINE, GUIDANCE, WORKORDERS
from counter.guidance import SCRIPTS, GuidanceError
from counter.users import Role
from counter.workorders import CallbackOutcome, NotYourWorkOrder, WorkOrder, WorkOrderError, WorkOrderStatus
from web.auth import require_role
from web.bodies import StrictBody, parse_body
from web.counter_access import agent_session
from web.errors import ApiError
from web.openapi import ApiRoutes
from web.params import path_int

routes = ApiRoutes()


class GuidanceStartBody(StrictBody):
    script: str


class GuidancePushBody(StrictBody):
    step: str


class WorkOrderStatusBody(StrictBody):
    status: WorkOrderStatus
    note: str = Field("", max_length=500)


class AssignBody(StrictBody):
    agent: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")


class CallbackBody(StrictBody):
    outcome: CallbackOutcome
    note: str = Field("", max_length=500)


@routes.get("/api/counter/approvals", "supervisor: A4 requests awaiting approval")
async def approvals(request: web.Request) -> web.Response:
    """The A4 requests waiting for a supervisor."""
    require_role(request, Role.SUPERVISOR)
    return web.json_response({"pending": [t.to_json() for t in await request.app[ENGINE].awaiting_approval()]})


@routes.post("/api/counter/approvals/{tid}", "supervisor: approve an A4 request")
async def approve(request: web.Request) -> web.Response:
    """A supervisor's approval of one A4 request."""
    user = require_role(request, Role.SUPERVISOR).user
    outcome = await request.app[ENGINE].approve(path_int(request, "tid"), user.username)
    return web.json_response(outcome.to_json())


@routes.get("/api/counter/workorders",
            "supervisor: all work orders, overdue first; agent: ?session=ID (own) or ?assigned=me")
async def list_workorders(request: web.Request) -> web.Response:
    """Supervisors: every work order.  Agents: those of one of their sessions (``?session=ID``) or
    those assigned to them (``?assigned=me``)."""
    user = require_role(request, Role.AGENT, Role.SUPERVISOR).user
    status = request.query.get("status")
    session_id = request.query.get("session")
    assigned = user.username if request.query.get("assigned") == "me" else None
    if user.role != Role.SUPERVISOR and session_id is None and assigned is None:
        raise ApiError(403, "forbidden", "agents list the work orders of their session (?session=ID) "
                                         "or those assigned to them (?assigned=me)")
    if session_id is not None and user.role != Role.SUPERVISOR:
        await agent_session(request, session_id, live=False)
    try:
        wanted = WorkOrderStatus(status) if status else None
    except ValueError as exc:
        raise ApiError(400, "bad_status", f"unknown status {status!r}") from exc
    orders = await request.app[WORKORDERS].list(status=wanted, session_id=session_id, assigned_to=assigned)
    return web.json_response({"work_orders": [o.to_json() for o in orders]})


def _order(order: WorkOrder) -> web.Response:
    return web.json_response(order.to_json())


async def _workorder_for(request: web.Request) -> tuple[int, str]:
    """The work order id of the path and the caller, who must be a supervisor or the agent whose it is."""
    user = require_role(request, Role.AGENT, Role.SUPERVISOR).user
    order_id = path_int(request, "wid")
    if user.role != Role.SUPERVISOR:
        try:
            await request.app[WORKORDERS].for_agent(order_id, user.username)
        except NotYourWorkOrder as exc:
            raise ApiError(403, "not_your_work_order", str(exc)) from exc
        except WorkOrderError as exc:  # here: no such work order
            raise ApiError(404, "not_found", str(exc)) from exc
    return order_id, user.username


@routes.post("/api/counter/workorders/{wid}/status", "move a work order on", WorkOrderStatusBody)
async def workorder_status(request: web.Request) -> web.Response:
    """A work order moved on (with a note)."""
    order_id, username = await _workorder_for(request)
    body = await parse_body(request, WorkOrderStatusBody)
    return _order(await request.app[WORKORDERS].set_status(order_id, body.status, username, body.note))


@routes.post("/api/counter/workorders/{wid}/callback", "record the call-back", CallbackBody)
async def workorder_callback(request: web.Request) -> web.Response:
    """The outcome of calling the customer back."""
    order_id, username = await _workorder_for(request)
    body = await parse_body(request, CallbackBody)
    return _order(await request.app[WORKORDERS].record_callback(order_id, body.outcome, username, body.note))


@routes.post("/api/counter/workorders/{wid}/assign", "supervisor: assign to an agent", AssignBody)
async def workorder_assign(request: web.Request) -> web.Response:
    """A supervisor gives a work order to an agent."""
    user = require_role(request, Role.SUPERVISOR).user
    body = await parse_body(request, AssignBody)
    try:
        order = await request.app[WORKORDERS].assign(path_int(request, "wid"), body.agent, user.username)
    except WorkOrderError as exc:  # here: no such work order
        raise ApiError(404, "not_found", str(exc)) from exc
    return _order(order)


@routes.get("/api/counter/guidance/scripts", "staff: the guidance knowledge base")
async def guidance_scripts(request: web.Request) -> web.Response:
    """Every guidance script."""
    require_role(request)
    return web.json_response({"scripts": [s.to_json() for s in SCRIPTS.values()]})


@routes.post("/api/counter/sessions/{sid}/guidance", "agent: start guidance", GuidanceStartBody)
async def guidance_start(request: web.Request) -> web.Response:
    """A guidance script started on the session."""
    session = await agent_session(request)
    body = await parse_body(request, GuidanceStartBody)
    try:
        run_id = await request.app[GUIDANCE].start(session.id, body.script)
    except GuidanceError as exc:  # here: a bad request (no such script), not a conflict
        raise ApiError(400, "guidance", str(exc)) from exc
    return web.json_response({"run_id": run_id}, status=201)


@routes.post("/api/counter/sessions/{sid}/guidance/{rid}/push", "agent: push a step to the customer's screen",
             GuidancePushBody)
async def guidance_push(request: web.Request) -> web.Response:
    """The next step of a guidance run, shown on the customer's screen."""
    session = await agent_session(request)
    body = await parse_body(request, GuidancePushBody)
    guidance = request.app[GUIDANCE]
    run = await guidance.get(path_int(request, "rid"))
    if run["session_id"] != session.id:
        raise GuidanceError("that guidance run belongs to another session")
    step = await guidance.push(run["id"], body.step)
    return web.json_response({"step": {"id": step.id, "zh": step.zh, "en": step.en}})
