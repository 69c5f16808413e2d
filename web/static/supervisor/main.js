// The supervisor wall: live lanes, agents' states, calls in progress (silent join), today's KPIs with
// small charts, and the A4 approvals.  Refreshes every few seconds.

import { AnswerPeer } from "../agent/call.js";
import { api, clock, h, header, laneHeading, mmss, mount, pct, requireUser, staffSocket, toast } from "../login/staff.js";
import { bars, gauge } from "./charts.js";
import { refreshLaneKpis, refreshStaffing } from "./staffing.js";
import { both } from "../shared/i18n.js";

const $ = (id) => document.getElementById(id);
const state = { ws: null, iceServers: [], listening: null, peer: null };

function sumLanes(lanes, key) {
  return lanes.reduce((a, l) => a + (l[key] ?? 0), 0);
}

function weighted(lanes, key, weight) {
  const total = sumLanes(lanes, weight);
  if (!total) return null;
  return lanes.reduce((a, l) => a + (l[key] ?? 0) * (l[weight] ?? 0), 0) / total;
}

function kpi(id, title, value, chart) {
  return h("div", { class: "kpi panel", id: `kpi-${id}`, dataset: { kpi: id } }, h("div", { class: "muted" }, title), h("div", { class: "value" }, value), chart ?? "");
}

async function refreshKpis() {
  const hours = $("hours").value;
  const [metrics, counter] = await Promise.all([api(`/api/supervisor/metrics?hours=${hours}`), api(`/api/consoles/kpis?hours=${hours}`)]);
  const lanes = metrics.lanes;
  const decided = sumLanes(lanes, "answered") + sumLanes(lanes, "abandoned");
  const within = sumLanes(lanes, "answered_within_target");
  const sl = decided ? within / decided : null;
  const abandon = decided ? sumLanes(lanes, "abandoned") / decided : null;
  const wait = weighted(lanes, "avg_wait_s", "answered");
  const handle = weighted(lanes, "avg_handle_s", "answered") ?? counter.avg_handle_s;
  mount($("kpis"),
    kpi("service-level", both("wall.kpi.service_level", { s: metrics.answer_target_s }), pct(sl), gauge(sl, { target: 0.8, label: both("wall.chart.service_level") })),
    kpi("abandon", both("wall.kpi.abandon"), pct(abandon), gauge(abandon, { target: 0.05, good: "low", label: both("wall.chart.abandon") })),
    kpi("wait", both("wall.kpi.wait"), mmss(wait), bars(lanes.map((l) => l.avg_wait_s ?? 0), { label: both("wall.chart.wait") })),
    kpi("handle", both("wall.kpi.handle"), mmss(handle), bars(counter.sessions_per_hour, { label: both("wall.chart.sessions") })),
    kpi("fcr", both("wall.kpi.fcr"), pct(counter.first_contact_resolution), gauge(counter.first_contact_resolution, { target: 0.75, label: both("wall.chart.fcr") })),
    kpi("csat", both("wall.kpi.csat", { n: counter.ratings }), counter.satisfaction === null ? "–" : `${counter.satisfaction} / 5`, bars(counter.rating_counts, { label: both("wall.chart.ratings"), color: "#7a2e8e" })),
  );
}

async function refreshLive() {
  const snap = await api("/api/supervisor/queue");
  mount($("lanes"), Object.entries(snap.lanes).map(([lane, rows]) => h("div", { class: "lane", dataset: { lane } },
    h("h3", {}, laneHeading(lane), ` · ${both("wall.lane_waiting", { n: rows.length })} · ${both("wall.est_wait", { t: mmss(snap.expected_wait_s?.[lane]) })}`),
    h("ul", { class: "plain" }, rows.map((r) => h("li", {}, `#${r.position} · ${mmss(r.waited_s)} · ${r.status}${r.offered_to ? ` → ${r.offered_to}` : ""}${r.connected ? "" : ` · ${both("wall.dropped")}`} · ${both("wall.est_wait", { t: mmss(r.est_wait_s) })}`))))));
  // the agents' states as routing keeps them, with the time in each (the same the agent's console shows)
  mount($("agents"), snap.agents.map((a) => h("tr", { dataset: { agent: a.id, state: a.state } },
    h("td", {}, `${a.name} (${a.id})`),
    h("td", { class: `state-${a.state}` }, both(`staff.state.${a.state}`), ` · ${mmss(a.state_s)}`,
      a.wrap_up_left_s !== null && a.wrap_up_left_s !== undefined ? ` · ${both("staff.state.wrap_left", { t: mmss(a.wrap_up_left_s) })}` : ""),
    h("td", {}, (a.skills ?? []).join(", ")), h("td", {}, a.call_id ?? (a.offer ? `offer ${a.offer}` : "")))));
  mount($("calls"), snap.calls.map((c) => h("tr", { dataset: { call: c.call_id } },
    h("td", {}, c.call_id), h("td", {}, c.lane === "care" ? h("span", { class: "badge care" }, both("staff.lane.care")) : c.lane),
    h("td", {}, c.agent ?? ""), h("td", {}, mmss(c.talking_s)),
    h("td", {}, (c.monitors ?? []).length ? both("wall.listening", { who: c.monitors.join(", ") }) : h("button", { type: "button", class: "listen-btn", onclick: () => silentJoin(c.call_id) }, both("wall.silent_join"))))));
}

/** One polite announcement when the queue or the offers change (not on every refresh). */
function announce(snap) {
  const rows = Object.values(snap.lanes).flat();
  const text = both("wall.live", { waiting: rows.filter((r) => r.status === "queued").length, offered: rows.filter((r) => r.status === "offered").length });
  if ($("wall-live").textContent !== text) $("wall-live").textContent = text;
}

async function refreshApprovals() {
  const data = await api("/api/counter/approvals");
  mount($("approvals"), data.pending.length
    ? data.pending.map((t) => h("tr", { dataset: { tx: String(t.id) } },
      h("td", {}, String(t.id)), h("td", {}, `${t.title_zh} (${t.code})`), h("td", {}, t.session_id), h("td", {}, t.requested_by),
      h("td", {}, both(t.confirmed ? "wall.confirmed" : "wall.not_confirmed")), h("td", {}, clock(t.created_at)),
      h("td", {}, h("button", { type: "button", class: "primary", onclick: () => approve(t.id) }, both("wall.approve")))))
    : h("tr", {}, h("td", { colspan: "7", class: "muted" }, both("wall.no_approvals"))));
}

async function approve(id) {
  try {
    const outcome = await api(`/api/counter/approvals/${id}`, { method: "POST" });
    toast(`#${id} ${outcome.title_zh}: ${outcome.status}`);
  } catch (err) {
    toast(err.message, "error");
  }
  await refreshApprovals();
}

function silentJoin(callId) {
  if (state.listening) leave();
  state.ws.send({ type: "silent_join", call_id: callId });
}

function leave() {
  if (!state.listening) return;
  state.ws.send({ type: "hangup", call_id: state.listening, reason: "supervisor left" });
  state.peer?.close();
  state.peer = null;
  state.listening = null;
  $("listen").hidden = true;
  delete document.body.dataset.listenVideo;
  delete document.body.dataset.listening;
}

const handlers = {
  welcome(msg) {
    state.iceServers = msg.ice_servers ?? [];
  },
  monitoring(msg) {
    state.listening = msg.call_id;
    $("listen").hidden = false;
    $("listen-call").textContent = `${msg.call_id} · ${msg.agent}`;
    document.body.dataset.listening = msg.call_id;
  },
  async sdp(msg) {
    if (msg.kind !== "offer") return;
    state.peer?.close();
    const video = $("listen-video");
    const stream = new MediaStream();
    state.peer = new AnswerPeer({
      send: (m) => state.ws.send(m),
      iceServers: state.iceServers,
      onRemote: (_s, track) => {
        stream.addTrack(track);
        video.srcObject = stream;
        video.onresize = () => { document.body.dataset.listenVideo = `${video.videoWidth}x${video.videoHeight}`; };
      },
    });
    await state.peer.handleOffer(msg.call_id, msg.sdp);
  },
  async ice(msg) {
    await state.peer?.ice(msg);
  },
  chat(msg) {
    toast(`${msg.sender}: ${msg.text}`);
  },
  call_ended(msg) {
    if (msg.call_id === state.listening) {
      state.peer?.close();
      state.peer = null;
      state.listening = null;
      $("listen").hidden = true;
    }
  },
  error(msg) {
    toast(`${msg.code}: ${msg.reason}`, "error");
  },
};

function connect() {
  state.ws = staffSocket("supervisor-wall/1", handlers);
  state.ws.connect();
}

async function tick() {
  try {
    await Promise.all([refreshKpis(), refreshLive(), refreshApprovals(), refreshStaffing($("staffing")), refreshLaneKpis($("lane-kpis"), $("hours").value)]);
    $("updated").textContent = both("wall.updated", { t: new Date().toLocaleTimeString("zh-CN", { hour12: false }) });
    document.body.dataset.ready = "1";
  } catch (err) {
    toast(err.message, "error");
  }
}

async function boot() {
  header(await requireUser("supervisor"));
  $("hours").addEventListener("change", tick);
  $("btn-leave").addEventListener("click", leave);
  $("whisper-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("whisper").value.trim();
    if (text && state.listening) state.ws.send({ type: "chat", call_id: state.listening, text });
    $("whisper").value = "";
  });
  connect();
  await tick();
  setInterval(tick, 3000);
}

boot().catch((err) => toast(err.message, "error"));
