// The helper's page (亲情协助, issue 21): redeem the invitation in the link, say who you are, join the
// call as its third party. The holder and the agent each offer a peer connection (answered here, one per
// sender); a send-only leg records this camera too. Steps pushed to the holder are read along; the
// helper may tap 我不会 or type for them. Only the holder confirms: this page has no confirm button.
// Opened without an invitation, the helper may start (家属先来): the server gives this page a helper token
// for a new call and a one-time link for the holder's own device (its QR code shown large); the call is
// queued when the holder joins from it, and only then does this page say who the helper is.

import { AnswerPeer } from "../agent/call.js";
import { refusalCode, request } from "../shared/api.js";
import { h, mount, playInto, qrCode } from "../shared/dom.js";
import { currentLang, setLang, t } from "../shared/i18n.js";
import { WitnessLeg } from "../shared/witness.js";
import { ReconnectingSocket, signalingUrl } from "../shared/ws.js";

const $ = (id) => document.getElementById(id);
const RELATIONS = ["child", "spouse", "grandchild", "sibling", "relative", "friend", "other"];
const state = { token: null, callId: null, stream: null, iceServers: [], consent: null, step: null, ended: false,
  introduced: false, inCall: false, started: false, holder: null, holderCame: false };
const peers = new Map(); // sender key -> AnswerPeer
let ws = null;
let witness = null;
let current = null;

function show(build) {
  current = build;
  mount($("screen"), build());
}

function screen(name, title, ...body) {
  document.body.dataset.screen = name;
  return h("section", { class: `screen screen-${name}`, "data-screen": name }, h("h1", {}, title), ...body);
}

function button(label, onclick, { kind = "primary", id } = {}) {
  return h("button", { type: "button", class: `big ${kind}`, id, onclick }, h("span", { class: "label" }, label));
}

function refused(code) {
  document.body.dataset.refused = code;
  show(() => screen("refused", t(`invite.${code}`) || t("invite.invite_unknown")));
}

async function redeem() {
  const code = new URLSearchParams(location.hash.slice(1)).get("code");
  if (!code) return show(startScreen);
  let body;
  try {
    body = await request("/api/helper/join", { body: { code } });
  } catch (err) {
    return refused(refusalCode(err, "invite_unknown"));
  }
  history.replaceState(null, "", location.pathname); // the code is used: keep it out of the address bar
  state.token = body.token;
  state.callId = body.call_id;
  show(intro);
}

function startScreen() {
  return screen("start", t("helper.start_title"),
    h("p", {}, t("helper.start_hint")),
    button(t("helper.start"), startCall, { id: "btn-start" }));
}

async function startCall() {
  const body = await request("/api/helper/start", { method: "POST" }).catch(() => null);
  if (!body) return show(() => screen("refused", t("helper.start_failed")));
  Object.assign(state, { token: body.token, callId: body.call_id, holder: body.holder, started: true });
  show(intro);
}

/** The holder's one-time link, as a QR code for their own phone; or opened here, said plainly. */
function holderLink() {
  return screen("holder_link", t("helper.holder_link_title"),
    qrCode(state.holder.qr_svg, { id: "holder-qr", label: t("helper.holder_link_title") }),
    h("p", {}, t("helper.holder_link_hint")),
    h("p", { class: "qr-link", id: "holder-link" }, state.holder.url),
    h("p", { id: "holder-here-hint" }, t("helper.holder_here_hint")),
    button(t("helper.holder_here"), () => window.open(state.holder.url, "_blank"), { id: "btn-holder-here", kind: "secondary" }));
}

function intro() {
  const name = h("input", { id: "helper-name", maxlength: 40, autocomplete: "name", required: true });
  const relation = h("select", { id: "helper-relation" },
    RELATIONS.map((r) => h("option", { value: r }, t(`relation.${r}`))));
  const go = async () => {
    if (!name.value.trim()) return name.focus();
    state.name = name.value.trim();
    state.relation = relation.value;
    show(() => screen("joining", t("helper.joining")));
    state.stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
    $("self-video").srcObject = state.stream;
    $("tiles").hidden = false;
    connect();
  };
  return screen("intro", t("helper.intro_title"),
    h("label", { class: "field" }, t("helper.name"), name),
    h("label", { class: "field" }, t("helper.relation"), relation),
    button(t("helper.join"), go, { id: "btn-join" }));
}

function connect() {
  ws = new ReconnectingSocket(signalingUrl, {
    onOpen: () => ws.hello({ token: state.token, client: "helper-web/1" }),
    onMessage: (msg) => {
      const fn = handlers[msg.type];
      if (fn) Promise.resolve(fn(msg)).catch((err) => console.warn("helper page:", msg.type, err));
    },
    onState: (s) => { document.body.dataset.ws = s; },
  });
  ws.connect();
}

const send = (msg) => ws?.send(msg);

function callView() {
  const status = state.consent === "agreed" ? t("helper.agreed")
    : state.inCall ? t("helper.waiting_consent") : t("helper.waiting_agent");
  const step = state.step ? h("p", { class: "step-text", id: "helper-step" }, t("helper.step", { text: state.step.text })) : null;
  const text = h("input", { id: "helper-text", maxlength: 2000 });
  return screen("call", t("helper.page_title"),
    h("span", { class: "helper-tag" }, t("helper.label")),
    h("p", { id: "helper-status" }, status),
    step,
    state.step ? button(t("helper.dont_know"), () => {
      send({ type: "step_result", call_id: state.callId, step_id: state.step.id, status: "cancelled", value: "dont_know" });
      state.step = null;
      show(callView);
    }, { id: "btn-dont-know", kind: "care" }) : null,
    h("label", { class: "field" }, t("helper.type"), text),
    button(t("helper.send"), () => {
      if (!text.value.trim()) return;
      send({ type: "chat", call_id: state.callId, text: text.value.trim() });
      text.value = "";
    }, { id: "btn-send", kind: "secondary" }));
}

function videoFor(sender) {
  return sender.startsWith("customer:") ? $("holder-video") : $("agent-video");
}

const handlers = {
  welcome(msg) {
    state.iceServers = msg.ice_servers ?? [];
    if (state.started && !state.holderCame) return show(holderLink); // no call before the holder joins
    introduce();
    show(callView);
  },
  call_started() {
    state.inCall = true;
    startWitness();
    show(callView);
  },
  async sdp(msg) {
    if (msg.kind !== "offer" || !msg.sender) return;
    peers.get(msg.sender)?.close(); // a new offer (the other side came back): a new connection
    const peer = new AnswerPeer({
      send, iceServers: state.iceServers, to: msg.sender,
      onRemote: (stream) => playInto(videoFor(msg.sender), stream),
    });
    peers.set(msg.sender, peer);
    for (const track of state.stream.getTracks()) peer.pc.addTrack(track, state.stream);
    await peer.handleOffer(msg.call_id, msg.sdp);
  },
  async ice(msg) {
    await peers.get(msg.sender)?.ice(msg);
  },
  async witness_sdp(msg) {
    if (msg.kind === "answer") await witness?.answer(msg.sdp);
  },
  helper_state(msg) {
    if (msg.present) state.holderCame = true;
    introduce();
    state.consent = msg.consent ?? null;
    state.inCall = msg.in_call;
    document.body.dataset.consent = msg.consent ?? "none";
    show(callView);
  },
  push_step(msg) {
    const p = msg.params ?? {};
    const text = p[`text_${currentLang() === "en" ? "en" : "zh"}`] ?? p.text ?? msg.step;
    state.step = { id: msg.step_id, text };
    document.body.dataset.step = msg.step_id;
    show(callView);
  },
  call_ended(msg) {
    state.ended = true;
    document.body.dataset.ended = msg.reason;
    ws.close();
    witness?.close();
    for (const peer of peers.values()) peer.close();
    for (const track of state.stream?.getTracks() ?? []) track.stop();
    $("tiles").hidden = true;
    show(() => screen("ended", t(msg.reason === "helper_refused" ? "helper.refused" : "helper.ended")));
  },
  error(msg) {
    document.body.dataset.error = msg.code;
    if (msg.code === "bad_token" && !state.ended) refused("invite_revoked");
  },
};

function introduce() {
  if (state.introduced) return;
  send({ type: "helper_intro", call_id: state.callId, name: state.name, relation: state.relation });
  state.introduced = true;
}

async function startWitness() {
  witness?.close();
  witness = new WitnessLeg({ send, iceServers: state.iceServers, onState: (s) => { document.body.dataset.witness = s; } });
  await witness.offer(state.callId, state.stream);
}

function relabel() {
  document.title = t("helper.page_title");
  $("app-title").textContent = t("helper.page_title");
  $("btn-lang").textContent = t("lang.switch");
  $("holder-label").textContent = t("helper.holder");
  $("agent-label").textContent = t("helper.agent");
  $("self-label").textContent = t("helper.label");
}

setLang("zh-CN");
$("btn-lang").addEventListener("click", () => {
  setLang(currentLang() === "zh-CN" ? "en" : "zh-CN");
  relabel();
  if (current) show(current);
});
relabel();
redeem();
