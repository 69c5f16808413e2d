"""In-call relay: SDP, ICE, chat and pushed steps forwarded between the parties of a connected call.

Relay takes no lock: it reads the call and forwards the message as sent, with the sender put in front.
"""

from __future__ import annotations

import logging
from typing import get_args

from signaling import protocol as p
from signaling.core import ChatLine, ServiceCore
from signaling.state import CallStatus, Principal, customer_key

log = logging.getLogger("signaling")

#: The client messages relayed between the parties rather than handled by the service.
RELAYED: tuple[type[p.Relayed], ...] = get_args(p.Relayed)


class Relay(ServiceCore):
    """Who may send what to whom on a call, and the chat hooks."""

    async def _relay(self, who: Principal, m: p.Relayed, raw: str | bytes) -> None:
        if m.sender is not None:
            raise p.ProtocolError("invalid", f"{m.type}: sender is set by the server; leave it out", m.ref)
        call = await self.bus.read_call(m.call_id)
        if call is None or call.status != CallStatus.IN_CALL or call.agent_id is None:
            raise p.ProtocolError("not_in_call", f"{m.type}: call {m.call_id} is not connected", m.ref)
        customer = customer_key(call.call_id)
        monitors = [f"supervisor:{s}" for s in call.monitors]
        # A helper (家属) the holder has not refused is a third party: reached with ``to``, reads along.
        helper = f"helper:{call.call_id}" if call.helper_present and call.helper_consent != "refused" else None
        alongside = [helper] if helper and isinstance(m, (p.Chat, p.PushStep)) else []
        to = getattr(m, "to", None)
        targets: list[str]
        if who.role == "customer" and who.id == call.call_id:
            if isinstance(m, p.PushStep):
                raise p.ProtocolError("forbidden", "push_step may be sent by the agent only", m.ref)
            if helper is not None and to == helper:
                targets = [helper]
            else:
                targets = [self._agent_key(call), *alongside]
                if isinstance(m, p.Chat):
                    targets += monitors
        elif who.key == self._agent_key(call):
            if isinstance(m, p.StepResult):
                raise p.ProtocolError("forbidden", "step_result may be sent by the customer only", m.ref)
            if to is not None and to != customer:
                if to not in monitors and to != helper:
                    raise p.ProtocolError("bad_target", f"{to} is not on this call", m.ref)
                targets = [to]
            else:
                targets = [customer, *alongside]
                if isinstance(m, p.Chat):
                    targets += monitors
        elif who.role == "helper" and who.key == helper:
            if isinstance(m, p.PushStep):
                raise p.ProtocolError("forbidden", "push_step may be sent by the agent only", m.ref)
            if to is not None and to in (customer, self._agent_key(call)):
                targets = [to]
            else:
                targets = [self._agent_key(call)]
                if isinstance(m, p.Chat):
                    targets += [customer, *monitors]
        elif who.role == "supervisor" and who.id in call.monitors:
            if isinstance(m, (p.PushStep, p.StepResult)):
                raise p.ProtocolError("forbidden", "a listening supervisor cannot push steps", m.ref)
            targets = [self._agent_key(call)]
        else:
            raise p.ProtocolError("forbidden", "you are not on this call", m.ref)
        # The message was validated as sent; forward it as sent, with the sender put in front.
        text = (raw.decode() if isinstance(raw, bytes) else raw).lstrip()
        if text.startswith("{"):
            text = who.sender_prefix + text[1:]
        else:
            text = p.dump(m.model_copy(update={"sender": who.key}))
        for key in targets:
            await self.bus.send(key, text)
        self.stats["relayed"] += 1
        if isinstance(m, p.Chat) and self.chat_hooks:
            await self._chat(ChatLine(call.call_id, who.role, who.audit_id, m.text,
                                      call.claimed_account or call.claimed_phone))


    async def _chat(self, line: ChatLine) -> None:
        for hook in self.chat_hooks:
            try:
                await hook(line)
            except Exception:
                log.exception("signaling: chat hook failed for %s", line.call_id)

