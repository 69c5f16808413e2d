// Presence and queue: the server's state of this agent, the queue by lane, an offered call (accept or
// decline), and the alert when the customer asks for help on a step.

import { api, h, laneHeading, mmss, mount } from "../login/staff.js";
import { both, pair } from "../shared/i18n.js";
import { $, send, setPresence, state } from "./state.js";
import { wrapUpOver } from "./wrapup.js";

/** The server's state of this agent (presence_ack / agent_state), shown as is: never guessed here.
 * The time in it counts up from the server's figure. */
export function showState(msg) {
  state.server = { state: msg.state, inState: msg.in_state_s ?? 0, wrapLeft: msg.wrap_up_left_s ?? null, at: performance.now() };
  if (msg.state === "available" || msg.state === "away") state.presence = msg.state;
  document.body.dataset.presence = msg.state;
  $("agent-state").dataset.state = msg.state;
  $("agent-state-name").textContent = both(`staff.state.${msg.state}`);
  $("btn-available").setAttribute("aria-pressed", String(msg.state === "available"));
  $("btn-away").setAttribute("aria-pressed", String(msg.state === "away"));
  $("btn-available").disabled = msg.state === "in_call";
  $("btn-away").disabled = msg.state === "in_call";
  $("btn-extend").hidden = msg.state !== "wrap_up";
  renderStateTime();
  if ((msg.state === "available" || msg.state === "offered") && state.call?.ended) wrapUpOver();
}

export function renderStateTime() {
  const s = state.server;
  if (!s) return;
  const gone = (performance.now() - s.at) / 1000;
  const parts = [mmss(s.inState + gone)];
  if (s.state === "wrap_up" && s.wrapLeft !== null) parts.push(both("staff.state.wrap_left", { t: mmss(Math.max(0, s.wrapLeft - gone)) }));
  if (s.state === "wrap_up" && state.waiting > 0) parts.push(both("staff.state.wrap_holding", { n: state.waiting }));
  $("agent-state-time").textContent = parts.join(" · ");
}

export function togglePresence() {
  const now = state.server?.state;
  setPresence(now === "available" || now === "offered" ? "away" : "available");
}

export async function refreshQueue() {
  try {
    const data = await api("/api/consoles/queue");
    state.waiting = Object.values(data.lanes).reduce((n, rows) => n + rows.filter((r) => r.status === "queued").length, 0);
    const lanes = Object.entries(data.lanes).map(([lane, rows]) => h("div", { class: "lane", dataset: { lane } },
      h("h3", {}, laneHeading(lane), ` · ${rows.length}`),
      rows.length
        ? h("ul", { class: "plain" }, rows.map((r) => h("li", {}, h("span", {}, `#${r.position}`), h("span", {}, mmss(r.waited_s)))))
        : h("p", { class: "muted" }, both("staff.queue_empty")),
    ));
    mount($("queue"), lanes);
  } catch (err) {
    mount($("queue"), h("p", { class: "error" }, err.message));
  }
}

export function showOffer(msg) {
  state.offer = msg;
  const care = msg.lane === "care";
  mount($("offer-info"),
    care ? h("span", { class: "badge care" }, both("staff.lane.care_offer")) : h("span", { class: "badge" }, both("staff.lane.general")),
    ` ${both("staff.offer_waited", { t: mmss(msg.waited_s) })}`,
    msg.claimed_phone ? ` · ${msg.claimed_phone}` : "",
    msg.transfer_from ? ` · ${both("staff.offer_from", { who: msg.transfer_from })}` : "");
  $("offer").hidden = false;
  $("offer").dataset.lane = msg.lane;
  $("btn-accept").focus();
}

export function accept() {
  if (!state.offer) return;
  send({ type: "accept", call_id: state.offer.call_id });
}

export function decline() {
  if (!state.offer) return;
  send({ type: "decline", call_id: state.offer.call_id, reason: "declined by agent" });
  state.offer = null;
  $("offer").hidden = true;
}

/**
 * The customer pressed 我不会，请帮我 on a step: an alert on top of the console with the step, and a
 * tone (the agent may be looking elsewhere); it stays until the agent acknowledges it.
 */
export function helpAlert(stepIdValue) {
  const pushed = state.stepKinds.get(stepIdValue) ?? { step: "info", text: null };
  const step = pushed.text ?? pair(`staff.push.${pushed.step}`);
  $("help-alert-text").textContent = both("staff.help_alert", { step });
  $("help-alert").hidden = false;
  document.body.dataset.helpAlert = pushed.step;
  try {
    const audio = new AudioContext();
    for (const [at, freq] of [[0, 880], [0.35, 660], [0.7, 880]]) {
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.frequency.value = freq;
      gain.gain.value = 0.2;
      tone.connect(gain).connect(audio.destination);
      tone.start(audio.currentTime + at);
      tone.stop(audio.currentTime + at + 0.25);
    }
  } catch {
    // no audio output: the alert stays on screen until acknowledged
  }
}
