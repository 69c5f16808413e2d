// The agent console's state and the few things every part of it uses: the element lookup, sending on
// the signaling socket, pushing a step to the customer's screen, the server's refusal words.

export const $ = (id) => document.getElementById(id);

export const state = {
  user: null,
  ws: null,
  iceServers: [],
  presence: "away", // the agent's last choice (available / away), asked for again on reconnect
  server: null, // the server's state of this agent: {state, inState, wrapLeft, at}
  waiting: 0,
  highlight: -1, // the highlighted transaction in the search's list
  wrapTouched: false,
  offer: null,
  call: null, // {id, lane, claimedPhone}
  session: null,
  idStill: null, // face declined: the sha256 of the ID still the customer's page sent
  peer: null,
  witness: null,
  monitors: new Map(),
  local: null,
  remote: null,
  catalog: [],
  selected: null,
  steps: new Map(), // step_id -> handler(result message)
  guidanceRun: null,
  scripts: [],
  muted: false,
  stepSeq: 0,
  stepKinds: new Map(), // step id -> what was pushed, for the help alert
};


export function send(msg) {
  state.ws?.send(msg);
}

function stepId(kind) {
  state.stepSeq += 1;
  return `${kind}-${state.stepSeq}-${Date.now() % 100000}`;
}

/** Push a step to the customer's screen; resolves with their step_result. */
export function pushStep(step, params = {}) {
  const id = stepId(step);
  state.stepKinds.set(id, { step, text: params.text_zh ? { zh: params.text_zh, en: params.text_en ?? params.text_zh } : null });
  send({ type: "push_step", call_id: state.call.id, step_id: id, step, params: { ...params } });
  return new Promise((resolve) => state.steps.set(id, resolve));
}

export function setPresence(value) {
  send({ type: "presence", state: value });
}

/** A refusal as the server words it: zh-CN, then English. */
export function whyNot(why) {
  return why?.why_not ? `${why.why_not_zh ?? ""} ${why.why_not}`.trim() : "";
}

/** A refusal's words as a pair for both(): each language its own. */
export function whyPair(why) {
  return { zh: why?.why_not_zh ?? "", en: why?.why_not ?? "" };
}

export function parseValue(value) {
  try {
    return JSON.parse(value ?? "{}") ?? {};
  } catch {
    return {};
  }
}
