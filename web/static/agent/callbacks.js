// The agent's scheduled call-backs: those due now for the agent's lanes, a button that starts one (the
// server texts the customer a video invitation routed to this agent), and the outcome once done.

import { api, clock, h, laneName, mount, toast } from "../login/staff.js";
import { both } from "../shared/i18n.js";

const OUTCOMES = ["resolved", "work_order", "no_answer", "customer_declined"];

function row(c, me, refresh) {
  const act = async (path, body) => {
    try {
      await api(`/api/consoles/callbacks/${c.id}/${path}`, { method: "POST", body });
    } catch (err) {
      toast(err.message, "error");
    }
    await refresh();
  };
  const when = clock(new Date(c.preferred_at * 1000).toISOString());
  return h("li", { dataset: { callback: String(c.id), status: c.status } },
    h("span", {}, `${when} · ${laneName(c.lane)} · ${c.msisdn} `),
    c.status === "scheduled"
      ? h("button", { type: "button", class: "primary callback-start", onclick: () => act("start") }, both("callback.start"))
      : c.agent === me
        ? h("span", {}, both("callback.started"), " ", OUTCOMES.map((o) => h("button", { type: "button",
          class: "callback-outcome", dataset: { outcome: o }, onclick: () => act("outcome", { outcome: o }) },
          both(`callback.outcome.${o}`))))
        : h("span", { class: "muted" }, c.agent ?? ""));
}

/** Show the due call-backs in ``target`` and keep them fresh. */
export function startCallbacks(target, me) {
  const refresh = async () => {
    const data = await api("/api/consoles/callbacks");
    mount(target, data.callbacks.length
      ? h("ul", { class: "plain" }, data.callbacks.map((c) => row(c, me, refresh)))
      : h("p", { class: "muted" }, both("callback.none")));
  };
  refresh().catch((err) => toast(err.message, "error"));
  setInterval(() => refresh().catch(() => {}), 5000);
}
