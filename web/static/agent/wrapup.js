// Guidance scripts, chat, wrap-up (closing the session, by the agent or when after-call work runs
// out) and the session's work orders.

import { api, clock, h, mount, toast } from "../login/staff.js";
import { both } from "../shared/i18n.js";
import { enableCall, hangup, resetCall } from "./lifecycle.js";
import { $, pushStep, send, setPresence, state } from "./state.js";

// ---- guidance, chat, wrap-up, work orders -------------------------------------------------------

export async function loadScripts() {
  const data = await api("/api/counter/guidance/scripts");
  state.scripts = data.scripts;
  mount($("guide-script"), data.scripts.map((s) => h("option", { value: s.code }, `${s.title_zh} · ${s.title_en}`)));
}

export async function startGuidance() {
  const code = $("guide-script").value;
  const script = state.scripts.find((s) => s.code === code);
  try {
    const run = await api(`/api/counter/sessions/${state.call.id}/guidance`, { method: "POST", body: { script: code } });
    state.guidanceRun = run.run_id;
    mount($("guide-step"), script.steps.map((s) => h("option", { value: s.id }, s.zh)));
    $("guide-step").disabled = false;
    $("btn-guide-push").disabled = false;
  } catch (err) {
    toast(err.message, "error");
  }
}

export async function pushGuidance() {
  try {
    const pushed = await api(`/api/counter/sessions/${state.call.id}/guidance/${state.guidanceRun}/push`, {
      method: "POST", body: { step: $("guide-step").value },
    });
    pushStep("info", { text_zh: pushed.step.zh, text_en: pushed.step.en, text: pushed.step.zh }).then((r) => {
      addChat(both("staff.step_result", { id: pushed.step.id, status: r.status }), "system");
    });
    const next = $("guide-step").selectedIndex + 1;
    if (next < $("guide-step").options.length) $("guide-step").selectedIndex = next;
  } catch (err) {
    toast(err.message, "error");
  }
}

export function addChat(text, who) {
  $("chat-log").append(h("div", { class: who === "me" ? "mine" : who }, `${who === "me" ? both("staff.chat_me") : who === "system" ? "·" : both("staff.chat_customer")}: ${text}`));
  $("chat-log").scrollTop = $("chat-log").scrollHeight;
}

export function sendChat(event) {
  event.preventDefault();
  const text = $("chat-input").value.trim();
  if (!text || !state.call) return;
  send({ type: "chat", call_id: state.call.id, text });
  addChat(text, "me");
  $("chat-input").value = "";
}

export async function loadWrapUps() {
  const data = await api("/api/consoles/wrap-ups");
  mount($("wrapup-code"), data.wrap_ups.map((w) => h("option", { value: w.code }, `${w.zh} · ${w.en}`)));
}

export async function closeSession(event) {
  event?.preventDefault();
  if (!state.call) return;
  await finishSession($("wrapup-code").value, true);
}

/** The server ended after-call work (its limit, or the agent chose available) while the session is
 * still open: close it with the code the agent picked, if any, and say so. */
export async function wrapUpOver() {
  if (!state.call || state.closing) return;
  await finishSession(state.wrapTouched ? $("wrapup-code").value : "not_recorded", false);
}

async function finishSession(code, byAgent) {
  const call = state.call;
  state.closing = true;
  try {
    const notes = $("wrapup-notes").value.trim();
    if (notes) await api(`/api/counter/sessions/${call.id}/notes`, { method: "POST", body: { text: notes } });
    await api(`/api/counter/sessions/${call.id}/close`, { method: "POST", body: { wrap_up: code } });
    if (!call.ended) hangup();
    if (state.call === call) {
      resetCall();
      enableCall(false);
    }
    toast(both(byAgent ? "staff.session_closed" : "staff.wrap_timed_out"));
    if (byAgent) setPresence("available");
  } catch (err) {
    toast(err.message, "error");
  } finally {
    state.closing = false;
  }
}

export async function refreshWorkOrders() {
  if (!state.call) return;
  const data = await api(`/api/counter/workorders?session=${encodeURIComponent(state.call.id)}`);
  if (!data.work_orders.length) {
    mount($("workorders"), h("p", { class: "muted" }, both("staff.workorders_none")));
    return;
  }
  mount($("workorders"), h("ul", { class: "plain" }, data.work_orders.map((o) => h("li", {},
    h("strong", {}, `#${o.id} ${o.category}`), ` ${o.summary} · `, h("span", { class: o.overdue ? "badge bad" : "badge" }, o.status),
    ` · ${both("staff.workorder_due", { t: clock(o.due_at) })} `,
    o.status === "open" ? h("button", { type: "button", onclick: () => moveOrder(o.id, "in_progress") }, both("staff.workorder_in_progress")) : ""))));
}

async function moveOrder(id, status) {
  try {
    await api(`/api/counter/workorders/${id}/status`, { method: "POST", body: { status } });
    await refreshWorkOrders();
  } catch (err) {
    toast(err.message, "error");
  }
}
