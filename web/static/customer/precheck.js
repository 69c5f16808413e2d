// The pre-call check: camera, microphone and connection, in plain words and spoken. All fine: the
// page goes on by itself. What fails leads to the fitting path: no camera but a microphone, on with
// the voice only; no microphone, or no connection, help (try again, or the 10000 hotline).

import { request } from "../shared/api.js";
import { h } from "../shared/dom.js";
import { t } from "../shared/i18n.js";

const SLOW_MS = 1500;

/** "ok", "slow" or "fail": a small request to the counter, timed (navigator.onLine is not trusted:
 * it says offline on networks it does not know). */
export async function checkConnection() {
  const started = performance.now();
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 5000);
  try {
    await request("/healthz", { raw: true, cache: "no-store", signal: ctl.signal });
  } catch {
    return "fail";
  } finally {
    clearTimeout(timer);
  }
  return performance.now() - started > SLOW_MS ? "slow" : "ok";
}

/** {camera, microphone, connection} for stream (null: nothing opened). */
export async function checkAll(stream) {
  const live = (track) => !!track && track.readyState === "live";
  return {
    camera: live(stream?.getVideoTracks()[0]) ? "ok" : "fail",
    microphone: live(stream?.getAudioTracks()[0]) ? "ok" : "fail",
    connection: await checkConnection(),
  };
}

/** Whether the call can start without asking: everything fine. */
export function allFine(result) {
  return result.camera === "ok" && result.microphone === "ok" && result.connection === "ok";
}

/** Which way on: "voice_only" (camera gone, microphone fine), "help" (no microphone or no network), "slow". */
export function pathFor(result) {
  if (result.microphone !== "ok" || result.connection === "fail") return "help";
  if (result.camera !== "ok") return "voice_only";
  return "slow";
}

/** The check's screen: each part with its word, what to do, and the buttons of the fitting path. */
export function precheckScreen({ result, onContinue, onRetry }) {
  const path = pathFor(result);
  const words = (part) => t("precheck.line", { part: t(`precheck.${part}`), state: t(`precheck.${part}_${result[part]}`) });
  const line = (part) => h("li", { class: `check ${result[part] === "ok" ? "ok" : "bad"}`, "data-part": part, "data-result": result[part] },
    `${result[part] === "ok" ? "✓" : "✗"} ${words(part)}`);
  const advice = t(`precheck.path_${path}`);
  const buttons = [];
  if (path !== "help") {
    buttons.push(h("button", { type: "button", class: "big primary", id: "btn-precheck-go", onclick: onContinue },
      h("span", { class: "label" }, t(path === "voice_only" ? "precheck.voice_only" : "common.continue"))));
  }
  buttons.push(h("button", { type: "button", class: `big ${path === "help" ? "primary" : "secondary"}`, id: "btn-precheck-retry", onclick: onRetry },
    h("span", { class: "label" }, t("common.retry"))));
  const parts = ["camera", "microphone", "connection"];
  return {
    name: "precheck",
    speak: true,
    say: `${parts.filter((p) => result[p] !== "ok").map(words).join(" ")} ${advice}`,
    node: h("section", { class: "screen screen-precheck", "data-screen": "precheck", "data-path": path, "aria-labelledby": "h-precheck" },
      h("h1", { id: "h-precheck", tabindex: "-1" }, t("precheck.title")),
      h("ul", { class: "checks" }, parts.map(line)),
      h("p", { class: "lead" }, advice),
      ...buttons),
  };
}
