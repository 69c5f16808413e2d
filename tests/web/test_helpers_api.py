"""A helper (家属) joins a call by an invitation link (issue 21): over real calls and the real app.

The link is server-minted, single-use, expiring and revoked with its call; the helper is a third party
of the call (offers reach them with ``to``, steps are read along, step results go to the agent), the
holder's consent is audited without the helper's name in the immutable body, and identity and
confirmation stay the holder's.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from counter.appkeys import HELPERS
from counter.audit import AUDIT
from signaling import protocol as p
from signaling.client import ClientError, SignalingClient
from signaling.helper_client import HelperClient
from signaling.helpers import Consent, HelperEvent, HelperState
from tests.calls import live_call


async def _invite(call: Any) -> dict[str, Any]:
    status, body = await call.phone("POST", "/api/customer/helper/invite")
    assert status == 200, body
    assert body["url"].endswith("/helper#code=" + body["code"]) and body["qr_svg"].lstrip().startswith("<?xml")
    return dict(body)


async def _join(base: str, code: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.post(base + "/api/helper/join", json={"code": code}) as resp:
        return resp.status, await resp.json()


async def test_a_helper_joins_by_the_link_and_the_holder_agrees(app_client: TestClient[Any, Any]) -> None:
    base = str(app_client.make_url("")).rstrip("/")
    async with live_call(base, client=HelperClient) as call, aiohttp.ClientSession() as http:
        cid = call.call_id
        invited = await _invite(call)
        helper = await HelperClient.helper(http, base, invited["code"])
        try:
            assert helper.welcome is not None and helper.welcome.role == "helper" and helper.welcome.call_id == cid
            started = await helper.expect(p.CallStarted, call_id=cid)
            assert started.peer == "agent:agent1"
            for party in (call.customer, call.agent):
                joined = await party.expect(HelperState, event=HelperEvent.JOINED)  # type: ignore[type-var]
                assert joined.helper == f"helper:{cid}" and joined.present and joined.consent is None
            # Mesh: the holder and the agent each offer the helper a peer connection; the helper answers both.
            await call.agent.send(p.Sdp(call_id=cid, kind="offer", sdp="v=0 agent", to=f"helper:{cid}"))
            got = await helper.expect(p.Sdp, sender="agent:agent1")
            assert got.sdp == "v=0 agent"
            await call.customer.send(p.Sdp(call_id=cid, kind="offer", sdp="v=0 holder", to=f"helper:{cid}"))
            assert (await helper.expect(p.Sdp, sender=f"customer:{cid}")).sdp == "v=0 holder"
            await helper.send(p.Sdp(call_id=cid, kind="answer", sdp="v=0 h1", to=f"customer:{cid}"))
            assert (await call.customer.expect(p.Sdp, sender=f"helper:{cid}")).sdp == "v=0 h1"
            await helper.send(p.Sdp(call_id=cid, kind="answer", sdp="v=0 h2", to="agent:agent1"))
            assert (await call.agent.expect(p.Sdp, sender=f"helper:{cid}")).sdp == "v=0 h2"
            # The helper says who they are; the holder is asked on screen and agrees.
            await helper.send({"type": "helper_intro", "call_id": cid, "name": "王小明", "relation": "child"})
            asked = await call.customer.expect(HelperState, event=HelperEvent.INTRO)  # type: ignore[type-var]
            assert (asked.name, asked.relation, asked.consent) == ("王小明", "child", Consent.PENDING)
            await helper.send({"type": "helper_consent", "call_id": cid, "accepted": True})
            assert (await helper.expect(p.ErrorMsg)).code == "forbidden"  # the holder's answer only
            await call.customer.send({"type": "helper_consent", "call_id": cid, "accepted": True})
            told = await call.agent.expect(HelperState, event=HelperEvent.CONSENT)  # type: ignore[type-var]
            assert told.consent is Consent.AGREED and told.relation == "child"
            audit = app_client.app[AUDIT]
            [entry] = await audit.search(action="helper.consent", session_id=cid)
            assert entry["entry"]["outcome"] == "ok" and entry["entry"]["details"] == {"relation": "child"}
            assert "王小明" not in json.dumps(entry["entry"], ensure_ascii=False)  # purgeable only
            assert await audit.personal(entry["entry"]["seq"]) == {"name": "王小明"}
            # Reads along, taps for the holder; never pushes.
            await call.agent.send(p.PushStep(call_id=cid, step_id="s1", step="info", params={}))
            assert (await helper.expect(p.PushStep)).step_id == "s1"
            assert (await call.customer.expect(p.PushStep)).step_id == "s1"
            await helper.send(p.StepResult(call_id=cid, step_id="s1", status="cancelled", value="dont_know"))
            tapped = await call.agent.expect(p.StepResult)
            assert tapped.sender == f"helper:{cid}" and tapped.value == "dont_know"
            await helper.send(p.PushStep(call_id=cid, step_id="x", step="info", params={}))
            assert (await helper.expect(p.ErrorMsg)).code == "forbidden"
            # Only the holder's token confirms; the helper's face is never the one checked.
            status, body = await call.phone("POST", "/api/customer/counter/transactions/1/confirm",
                                            json={"accept": True}, headers={"X-Customer-Token": helper.token})
            assert (status, body["error"]["code"]) == (403, "helper_not_holder"), body
            status, body = await call.staff("POST", f"/api/counter/sessions/{cid}/identity/face",
                                            json={"source": "helper"})
            assert (status, body["error"]["code"]) == (409, "not_holder"), body
            # The link was single-use; the call ends: the helper is told and their token dies.
            assert (await _join(base, invited["code"]))[1]["error"]["code"] == "invite_used"
            await call.hang_up()
            await helper.expect(p.CallEnded, call_id=cid)
            assert await app_client.app[HELPERS].store.check_token(helper.token or "") is None
        finally:
            await helper.close()


async def test_expired_reused_and_revoked_links_are_refused(app_client: TestClient[Any, Any]) -> None:
    base = str(app_client.make_url("")).rstrip("/")
    store = app_client.app[HELPERS].store
    async with live_call(base, client=HelperClient) as call:
        expired = await store.invite(call.call_id, "test", ttl_s=-1.0)
        status, body = await _join(base, expired.code)
        assert (status, body["error"]["code"]) == (410, "invite_expired"), body
        status, body = await _join(base, "no-such-code")
        assert (status, body["error"]["code"]) == (404, "invite_unknown"), body
        first = await _invite(call)
        second = await _invite(call)  # a new link withdraws the unused one
        status, body = await _join(base, first["code"])
        assert (status, body["error"]["code"]) == (410, "invite_revoked"), body
        status, body = await _join(base, second["code"])
        assert status == 200, body
        status, body = await _join(base, second["code"])
        assert (status, body["error"]["code"]) == (410, "invite_used"), body
        third = await _invite(call)
    status, body = await _join(base, third["code"])  # the call ended: revoked with it
    assert (status, body["error"]["code"]) == (410, "invite_revoked"), body


async def test_a_helper_may_come_before_the_agent(app_client: TestClient[Any, Any]) -> None:
    base = str(app_client.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as http, aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as staff_http:
        holder = await HelperClient.customer(http, base)
        await holder.send(p.Join(care=False))  # queued, no agent yet: the helper comes in before any agent
        await holder.expect(p.QueueStatus)
        async with http.post(base + "/api/customer/helper/invite",
                             headers={"X-Customer-Token": holder.token or ""}) as resp:
            code = (await resp.json())["code"]
        helper = await HelperClient.helper(http, base, code)
        agent = await HelperClient.staff(staff_http, base, "agent1", "agent1-demo")
        try:
            state = await holder.expect(HelperState, event=HelperEvent.JOINED)  # type: ignore[type-var]
            assert not state.in_call and state.holder_present
            await agent.send(p.Presence(state="available"))
            offer = await agent.expect(p.CallOffer)
            await agent.send(p.Accept(call_id=offer.call_id))
            # Put through: the helper is told who the agent is, the agent that a helper is there.
            assert (await helper.expect(p.CallStarted)).peer == "agent:agent1"
            joined = await agent.expect(HelperState, event=HelperEvent.JOINED)  # type: ignore[type-var]
            assert joined.helper == f"helper:{offer.call_id}"
            await holder.send(p.Hangup())
            await helper.expect(p.CallEnded)
        finally:
            for c in (helper, holder, agent):
                await c.close()


@pytest.mark.parametrize("accepted", [False])
async def test_the_holder_says_no(app_client: TestClient[Any, Any], accepted: bool) -> None:
    base = str(app_client.make_url("")).rstrip("/")
    async with live_call(base, client=HelperClient) as call, aiohttp.ClientSession() as http:
        helper = await HelperClient.helper(http, base, (await _invite(call))["code"])
        try:
            await helper.send({"type": "helper_intro", "call_id": call.call_id, "name": "李四", "relation": "friend"})
            await call.customer.expect(HelperState, event=HelperEvent.INTRO)  # type: ignore[type-var]
            await call.customer.send({"type": "helper_consent", "call_id": call.call_id, "accepted": accepted})
            assert (await helper.expect(p.CallEnded)).reason == "helper_refused"
            [entry] = await app_client.app[AUDIT].search(action="helper.consent", session_id=call.call_id)
            assert entry["entry"]["outcome"] == "refused"
            await helper.send(p.Sdp(call_id=call.call_id, kind="offer", sdp="v=0", to="agent:agent1"))
            assert (await helper.expect(p.ErrorMsg)).code == "forbidden"
            with pytest.raises(ClientError):
                await HelperClient.connect(http, base, token=helper.token)
        finally:
            await helper.close()


async def test_the_agent_suggests_and_the_holder_decides(app_client: TestClient[Any, Any]) -> None:
    async with live_call(str(app_client.make_url("")), client=HelperClient) as call:
        await call.customer.send({"type": "helper_suggest", "call_id": call.call_id})
        assert (await call.customer.expect(p.ErrorMsg)).code == "forbidden"
        await call.agent.send({"type": "helper_suggest", "call_id": call.call_id})
        asked = await call.customer.expect(HelperState, event=HelperEvent.SUGGESTED)  # type: ignore[type-var]
        assert not asked.present and asked.helper == f"helper:{call.call_id}"
        [entry] = await app_client.app[AUDIT].search(action="helper.suggested", session_id=call.call_id)
        assert entry["entry"]["actor_id"] == "agent1"
        # No link exists until the holder's own page asks for one (with the holder's token).
        assert await app_client.app[HELPERS].store.db.fetch("SELECT 1 FROM helper_invites") == []


async def test_the_agent_waits_until_the_holder_agrees_to_the_helper(app_client: TestClient[Any, Any]) -> None:
    """While a helper is in the call and the holder has not agreed (or refused and the helper is still
    there), identity checks and changes are refused with a code the console words; reading goes on."""
    base = str(app_client.make_url("")).rstrip("/")
    async with live_call(base, client=HelperClient, claimed_phone="13800138000") as call, \
            aiohttp.ClientSession() as http:
        cid = call.call_id
        face = f"/api/counter/sessions/{cid}/identity/face"
        password = f"/api/counter/sessions/{cid}/verify-password"
        helper = await HelperClient.helper(http, base, (await _invite(call))["code"])
        try:
            await call.agent.expect(HelperState, event=HelperEvent.JOINED)  # type: ignore[type-var]
            status, body = await call.staff("POST", face, json={"source": "live"})
            assert (status, body["error"]["code"]) == (409, "helper_consent_pending"), body
            await helper.send({"type": "helper_intro", "call_id": cid, "name": "王小明", "relation": "child"})
            await call.agent.expect(HelperState, event=HelperEvent.INTRO)  # type: ignore[type-var]
            status, body = await call.staff("POST", password, json={"password": "123456"})
            assert (status, body["error"]["code"]) == (409, "helper_consent_pending"), body
            status, body = await call.phone("POST", "/api/customer/counter/transactions/1/confirm",
                                            json={"accept": True})
            assert (status, body["error"]["code"]) == (409, "helper_consent_pending"), body
            status, _ = await call.staff("GET", f"/api/counter/sessions/{cid}")
            assert status == 200  # reading is not held
            [refused] = await app_client.app[AUDIT].search(action="session.refused", session_id=cid, limit=1)
            assert refused["entry"]["details"]["code"] == "helper_consent_pending"
            await call.customer.send({"type": "helper_consent", "call_id": cid, "accepted": True})
            await call.agent.expect(HelperState, event=HelperEvent.CONSENT)  # type: ignore[type-var]
            status, body = await call.staff("POST", password, json={"password": "123456"})
            assert status != 409 or body["error"]["code"] != "helper_consent_pending", body
        finally:
            await helper.close()
        await call.agent.expect(HelperState, event=HelperEvent.LEFT)  # type: ignore[type-var]


async def test_a_refused_helper_still_connected_holds_the_call(app_client: TestClient[Any, Any]) -> None:
    base = str(app_client.make_url("")).rstrip("/")
    async with live_call(base, client=HelperClient) as call, aiohttp.ClientSession() as http:
        cid = call.call_id
        helper = await HelperClient.helper(http, base, (await _invite(call))["code"])
        try:
            await helper.send({"type": "helper_intro", "call_id": cid, "name": "李四", "relation": "friend"})
            await call.customer.expect(HelperState, event=HelperEvent.INTRO)  # type: ignore[type-var]
            await call.customer.send({"type": "helper_consent", "call_id": cid, "accepted": False})
            await helper.expect(p.CallEnded)
            status, body = await call.staff("POST", f"/api/counter/sessions/{cid}/identity/face",
                                            json={"source": "live"})
            assert (status, body["error"]["code"]) == (409, "helper_refused"), body
            await helper.close()
            await call.agent.expect(HelperState, event=HelperEvent.LEFT)  # type: ignore[type-var]
            status, body = await call.staff("POST", f"/api/counter/sessions/{cid}/identity/face",
                                            json={"source": "live"})
            assert body["error"]["code"] not in ("helper_refused", "helper_consent_pending"), body
        finally:
            await helper.close()


async def test_a_helper_starts_and_hands_the_holder_a_link(app_client: TestClient[Any, Any]) -> None:
    """The helper comes first (a new call, waiting); the holder joins from their own device with a one-time
    link (their own token, never the helper's); the agent proceeds only once the holder agreed."""
    base = str(app_client.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as helper_http, aiohttp.ClientSession() as holder_http, \
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as staff_http:
        async with helper_http.post(base + "/api/helper/start") as resp:
            started = await resp.json()
            assert resp.status == 200, started
        cid, link = started["call_id"], started["holder"]
        assert link["url"].endswith("/customer#holder=" + link["code"])
        assert link["qr_svg"].lstrip().startswith("<?xml")
        helper = await HelperClient.connect(helper_http, base, token=started["token"])
        agent = await HelperClient.staff(staff_http, base, "agent1", "agent1-demo")
        holder: SignalingClient | None = None
        try:
            assert helper.welcome is not None and (helper.welcome.role, helper.welcome.call_id) == ("helper", cid)
            # The helper's token is no holder's: the holder link is the holder's only, once.
            assert (await _join(base, link["code"]))[1]["error"]["code"] == "invite_unknown"
            async with holder_http.post(base + "/api/customer/holder/join", json={"code": link["code"]}) as resp:
                mine = await resp.json()
                assert resp.status == 200 and mine["call_id"] == cid and mine["token"] != started["token"], mine
            async with holder_http.post(base + "/api/customer/holder/join", json={"code": link["code"]}) as resp:
                assert (resp.status, (await resp.json())["error"]["code"]) == (410, "invite_used")
            holder = h = await HelperClient.connect(holder_http, base, token=mine["token"])
            assert h.welcome is not None and (h.welcome.role, h.welcome.call_id) == ("customer", cid)
            await h.send(p.Join(care=False, claimed_phone="13800138000"))
            for party in (h, helper):
                joined = await party.expect(HelperState, event=HelperEvent.JOINED)  # type: ignore[type-var]
                assert joined.present and joined.holder_present and not joined.in_call
            await helper.send({"type": "helper_intro", "call_id": cid, "name": "王小明", "relation": "child"})
            await h.expect(HelperState, event=HelperEvent.INTRO)  # type: ignore[type-var]
            await agent.send(p.Presence(state="available"))
            assert (await agent.expect(p.CallOffer)).call_id == cid
            await agent.send(p.Accept(call_id=cid))
            assert (await helper.expect(p.CallStarted)).peer == "agent:agent1"
            await agent.expect(HelperState, event=HelperEvent.JOINED)  # type: ignore[type-var]
            async with staff_http.get(base + "/api/auth/me") as resp:
                csrf = {"X-CSRF-Token": (await resp.json())["csrf_token"]}
            face = f"{base}/api/counter/sessions/{cid}/identity/face"
            async with staff_http.post(face, json={"source": "live"}, headers=csrf) as resp:
                assert (resp.status, (await resp.json())["error"]["code"]) == (409, "helper_consent_pending")
            await h.send({"type": "helper_consent", "call_id": cid, "accepted": True})
            await agent.expect(HelperState, event=HelperEvent.CONSENT)  # type: ignore[type-var]
            async with staff_http.post(face, json={"source": "helper"}, headers=csrf) as resp:
                assert (resp.status, (await resp.json())["error"]["code"]) == (409, "not_holder")
            # The holder drops: the helper alone is not the holder, the agent waits for them.
            await h.close()
            await agent.expect(p.PeerState, state="lost")
            async with staff_http.post(face, json={"source": "live"}, headers=csrf) as resp:
                assert (resp.status, (await resp.json())["error"]["code"]) == (409, "holder_absent")
        finally:
            for c in (helper, holder, agent):
                if c is not None:
                    await c.close()
