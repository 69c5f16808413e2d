// One screen per instruction. Each builder returns {node, say, speak}: say is the spoken version,
// speak tells the controller to say it even outside senior mode.

import { h } from "../shared/dom.js";
import { t } from "../shared/i18n.js";
import { repeat } from "../shared/speech.js";

const icon = (name, alt = "") => h("img", { class: "icon", src: `/static/customer/icons/${name}.svg`, alt, width: 48, height: 48 });

/** A large button: its label, an icon (customer/icons/<iconName>.svg) and a hint where given. */
export function bigButton(label, onclick, { kind = "primary", hint = "", id, iconName } = {}) {
  return h(
    "button",
    { type: "button", class: `big ${kind}`, id, onclick },
    iconName ? icon(iconName) : null,
    h("span", { class: "label" }, label),
    hint ? h("span", { class: "hint" }, hint) : null,
  );
}

/** A screen: a section named name, its heading (focused when shown), then body. */
export function screen(name, title, ...body) {
  return h("section", { class: `screen screen-${name}`, "data-screen": name, "aria-labelledby": `h-${name}` },
    h("h1", { id: `h-${name}`, tabindex: "-1" }, title), ...body);
}

/** What a consent says, a point a line, each with its icon: [[iconName, text], ...]. */
function points(items) {
  return h("ul", { class: "plain" }, items.map(([name, text]) => h("li", {}, icon(name), h("p", {}, text))));
}

/** Countdown with a "more time" button; returns {node, stop}. onExpire is called at zero. */
export function countdown(seconds, onExpire, { extra = 60 } = {}) {
  let left = seconds;
  const text = h("span", { class: "countdown-text", "aria-live": "off" }, t("common.seconds_left", { s: left }));
  const more = h("button", { type: "button", class: "secondary more-time", onclick: () => {
    left += extra;
    text.textContent = t("common.seconds_left", { s: left });
  } }, t("common.more_time"));
  const timer = setInterval(() => {
    left -= 1;
    text.textContent = t("common.seconds_left", { s: Math.max(0, left) });
    if (left <= 0) {
      clearInterval(timer);
      onExpire();
    }
  }, 1000);
  return { node: h("div", { class: "countdown" }, text, more), stop: () => clearInterval(timer), more };
}

export function entry({ onVideo, onSenior, careAge, phone = "", onPhone = () => {} }) {
  if (careAge) {
    // a care link for a holder of careAge or more: the care lane and senior mode, said plainly
    return {
      name: "entry",
      say: [t("entry.title"), t("entry.care_by_age", { age: careAge })],
      speak: true,
      node: screen("entry", t("entry.title"),
        h("p", { class: "lead care-note", id: "care-note" }, t("entry.care_by_age", { age: careAge })),
        h("div", { class: "stack" },
          bigButton(t("entry.start"), onSenior, { id: "btn-senior", kind: "care", iconName: "senior" }))),
    };
  }
  return {
    name: "entry",
    say: t("entry.say"),
    node: screen("entry", t("entry.title"),
      // optional: the server puts a holder of the care age in the care lane (never decided here)
      h("label", { class: "phone-field", for: "entry-phone" }, t("entry.phone_label"),
        h("input", { class: "chat-input", id: "entry-phone", type: "tel", inputmode: "numeric", autocomplete: "tel",
          maxlength: "11", pattern: "[0-9]*", value: phone, oninput: (e) => onPhone(e.target.value.replace(/\D/g, "")) })),
      h("div", { class: "stack" },
        bigButton(t("entry.video"), onVideo, { id: "btn-video", hint: t("entry.video_hint"), iconName: "video" }),
        bigButton(t("entry.senior"), onSenior, { id: "btn-senior", kind: "care", hint: t("entry.senior_hint"), iconName: "senior" }))),
  };
}

/** A question and its two answers, one above the other, spoken: yes and no are [label, onclick, options]. */
export function question(name, { title, say, body = [], yes, no }) {
  return {
    name,
    say,
    speak: true,
    node: screen(name, title, body, h("div", { class: "stack" }, bigButton(...yes), bigButton(...no))),
  };
}

export function consent({ onAgree, onDecline }) {
  return question("consent", {
    title: t("consent.title"),
    say: t("consent.say"),
    body: points([["camera", t("consent.camera")], ["record", t("consent.recording")], ["lock", t("consent.why")]]),
    yes: [t("consent.agree"), onAgree, { id: "btn-consent" }],
    no: [t("consent.decline"), onDecline, { id: "btn-consent-no", kind: "secondary" }],
  });
}

export function consentDeclined({ onBack }) {
  return {
    name: "declined",
    say: t("consent.declined_say"),
    node: screen("declined", t("consent.title"), h("p", { class: "lead" }, t("consent.declined")),
      bigButton(t("common.back"), onBack, { kind: "secondary", id: "btn-back" })),
  };
}

export function faceConsent({ onAgree, onDecline }) {
  return question("face-consent", {
    title: t("face.title"),
    say: t("face.say"),
    body: points([["face", t("face.what")], ["lock", t("face.keep")], ["card", t("face.alt")]]),
    yes: [t("face.agree"), onAgree, { id: "btn-face-yes" }],
    no: [t("face.decline"), onDecline, { id: "btn-face-no", kind: "primary-alt" }],
  });
}

export function asking() {
  return { name: "asking", say: t("perm.asking"), node: screen("asking", t("perm.asking")) };
}

export function permissionDenied({ reason, browser, onRetry, onVoice }) {
  const steps = reason === "no_camera" ? t("perm.no_camera") : t(`perm.${browser}`);
  return {
    name: "denied",
    say: t("perm.denied_say"),
    speak: true,
    node: screen("denied", t("perm.denied_title"),
      h("p", { class: "lead" }, t("perm.denied")),
      h("p", { class: "howto", "data-browser": browser }, steps),
      h("div", { class: "stack" },
        bigButton(t("common.retry"), onRetry, { id: "btn-retry" }),
        bigButton(t("perm.voice_only"), onVoice, { id: "btn-voice-only", kind: "secondary", hint: t("perm.voice_only_hint"),
          iconName: "mic" }))),
  };
}

/** What the waiting screen says for a queue position (1: next) and an estimated wait. */
export function waitingWords({ position, etaS, connecting = false }) {
  const minutes = Math.max(1, Math.round((etaS ?? 0) / 60));
  if (connecting) return { title: t("wait.connecting"), say: t("wait.connecting"), eta: "" };
  if (position == null) return { title: t("wait.title"), say: t("wait.auto"), eta: "" };
  if (position <= 1) return { title: t("wait.first"), say: t("wait.say_first"), eta: "" };
  return {
    title: t("wait.position", { n: position - 1 }),
    say: t("wait.say", { n: position - 1, m: minutes }),
    eta: etaS < 60 ? t("wait.eta_short") : t("wait.eta", { m: minutes }),
  };
}

export function waiting({ position, etaS, connecting, onLeave }) {
  const words = waitingWords({ position, etaS, connecting });
  const where = h("p", { class: "queue-position", id: "queue-position" }, words.title);
  const eta = h("p", { class: "queue-eta", id: "queue-eta", hidden: !words.eta }, words.eta);
  return {
    name: "waiting",
    say: words.say,
    speak: true,
    connecting,
    /** New words in the same nodes: the live region stays in place, so its change is announced. */
    update: (next) => {
      where.textContent = next.title;
      eta.textContent = next.eta;
      eta.hidden = !next.eta;
    },
    node: screen("waiting", t("wait.title"),
      h("div", { class: "queue", id: "queue", "aria-live": "polite" }, where, eta,
        h("div", { class: "spinner", "aria-hidden": "true" })),
      h("p", { class: "lead" }, t("wait.auto")),
      bigButton(t("wait.leave"), onLeave, { kind: "secondary", id: "btn-leave" })),
  };
}

export function inCall({ muted, reconnecting, voiceOnly, onMute, onHangup, onType }) {
  return {
    name: "call",
    say: reconnecting ? t("call.reconnecting_say") : t("call.say"),
    speak: true,
    node: h("section", { class: "screen screen-call", "data-screen": "call", "aria-label": t("call.title") },
      reconnecting ? h("p", { class: "banner", role: "status", id: "reconnecting" }, t("call.reconnecting")) : null,
      voiceOnly ? h("p", { class: "lead", id: "voice-only" }, t("call.voice_only")) : null,
      h("div", { class: "call-controls" },
        bigButton(muted ? t("call.unmute") : t("call.mute"), onMute, { kind: muted ? "warn" : "secondary", id: "btn-mute", iconName: muted ? "mic-off" : "mic" }),
        bigButton(t("call.type"), onType, { kind: "secondary", id: "btn-type", iconName: "keypad" }),
        bigButton(t("call.hangup"), onHangup, { kind: "danger", id: "btn-hangup", iconName: "hangup" }))),
  };
}

export function hangupConfirm({ onYes, onNo }) {
  return {
    name: "hangup",
    say: t("call.hangup_confirm"),
    node: screen("hangup", t("call.hangup_confirm"),
      h("div", { class: "stack" },
        bigButton(t("call.hangup_no"), onNo, { id: "btn-hangup-no" }),
        bigButton(t("call.hangup_yes"), onYes, { kind: "danger", id: "btn-hangup-yes" }))),
  };
}

/**
 * The service password on a large keypad: the digits are masked and go to the server alone (never
 * as chat, never to the agent). The whole keypad fits the screen, with the video hidden meanwhile.
 */
export function keypad({ status, onSend, onClose }) {
  const field = h("input", { id: "pw-input", class: "chat-input", type: "password", inputmode: "none", readonly: true,
    autocomplete: "off", "aria-label": t("pw.field"), placeholder: t("pw.field"), maxlength: "12" });
  const key = (k) => h("button", { type: "button", class: "key", "data-key": k, onclick: () => {
    if (field.value.length < 12) field.value += k;
  } }, k);
  const keys = ["1", "2", "3", "4", "5", "6", "7", "8", "9"].map(key);
  const del = h("button", { type: "button", class: "key key-del", id: "btn-clear", "aria-label": t("chat.clear"),
    onclick: () => { field.value = field.value.slice(0, -1); } }, t("chat.clear"));
  const send = () => {
    const text = field.value;
    if (!text) return;
    field.value = "";
    onSend(text);
  };
  return {
    name: "keypad",
    say: status ? t(`pw.${status}`) : t("pw.say"),
    speak: true,
    node: screen("keypad", t("pw.title"),
      status ? h("p", { class: `lead pw-status pw-${status}`, id: "pw-status", role: "status" }, t(`pw.${status}`)) : null,
      field,
      h("div", { class: "keypad", role: "group", "aria-label": t("pw.title") }, keys, del, key("0"),
        h("button", { type: "button", class: "key key-send primary", id: "btn-send", onclick: send }, t("pw.send"))),
      h("button", { type: "button", class: "secondary", id: "btn-chat-close", onclick: onClose }, t("chat.close"))),
  };
}

export function step({ text, press, onDone, onHelp }) {
  return {
    name: "step",
    say: press ? `${text} ${press}` : text,
    speak: true,
    node: screen("step", t("step.title"),
      h("p", { class: "lead step-text", id: "step-text" }, text),
      press ? h("p", { class: "press", id: "step-press" }, press) : null,
      h("button", { type: "button", class: "secondary repeat", id: "btn-step-repeat", onclick: () => repeat() },
        icon("speaker"), t("common.repeat")),
      h("div", { class: "stack" },
        bigButton(t("step.done"), onDone, { id: "btn-step-done", kind: "primary highlight" }),
        bigButton(t("step.help"), onHelp, { id: "btn-step-help", kind: "secondary" }))),
  };
}

/** A capture's live picture (muted, inline; mirrored for the front camera) in its box with the guide
 * to frame a face (an oval) or a card; {video, box}. */
function captureBox(id, { stream = null, card = false } = {}) {
  const video = h("video", { class: card ? "capture-video" : "capture-video mirror", id, autoplay: true, muted: true, playsinline: true });
  if (stream) video.srcObject = stream;
  video.muted = true;
  const guide = h("div", { class: card ? "card-guide" : "oval-guide", "aria-hidden": "true" });
  return { video, box: h("div", { class: card ? "capture-box card" : "capture-box" }, video, guide) };
}

export function faceCapture({ stream, timer }) {
  const { video, box } = captureBox("face-video", { stream });
  const hint = h("p", { class: "hint-live", id: "face-hint", "aria-live": "assertive" }, t("face_cap.say"));
  return {
    name: "face-capture",
    say: t("face_cap.say"),
    speak: true,
    video,
    hint,
    node: screen("face-capture", t("face_cap.title"), box, hint, timer.node),
  };
}

export function liveness({ stream, onAgain }) {
  const { box } = captureBox("live-video", { stream });
  const action = h("p", { class: "hint-live live-action", id: "live-action", "aria-live": "assertive" }, t("live.intro"));
  const progress = h("p", { class: "lead", id: "live-progress" }, "");
  return {
    name: "liveness",
    say: t("live.intro"),
    speak: true,
    action,
    progress,
    node: screen("liveness", t("live.title"), box, action, progress,
      bigButton(t("live.again"), onAgain, { kind: "secondary", id: "btn-live-again" })),
  };
}

export function idCapture({ timer }) {
  const { video, box } = captureBox("id-video", { card: true });
  const hint = h("p", { class: "hint-live", id: "id-hint", "aria-live": "assertive" }, t("id_cap.switching"));
  return {
    name: "id-capture",
    say: t("id_cap.say"),
    speak: true,
    video,
    hint,
    node: screen("id-capture", t("id_cap.title"), box, hint, timer.node),
  };
}

export function idPreview({ url, onSend, onAgain }) {
  return {
    name: "id-preview",
    say: t("id_cap.preview_say"),
    speak: true,
    node: screen("id-preview", t("id_cap.preview"),
      h("img", { class: "preview", id: "id-preview-img", src: url, alt: t("id_cap.title") }),
      h("div", { class: "stack" },
        bigButton(t("id_cap.send"), onSend, { id: "btn-id-send" }),
        bigButton(t("id_cap.again"), onAgain, { kind: "secondary", id: "btn-id-again" }))),
  };
}

/** The request as the server words it: title, what (with its inputs), effect. */
export function confirmation({ title, what, inputs = [], effect, timer, onYes, onNo }) {
  return {
    name: "confirm",
    say: t("confirm.say", { what, effect: effect ?? "" }),
    speak: true,
    node: screen("confirm", t("confirm.title"),
      h("p", { class: "lead" }, t("confirm.intro")),
      h("p", { class: "what", id: "confirm-title" }, title),
      h("p", { class: "lead", id: "confirm-what" }, what),
      inputs.length
        ? h("dl", { class: "inputs", id: "confirm-inputs" }, inputs.flatMap((i) => [h("dt", {}, i.label), h("dd", {}, i.value)]))
        : null,
      effect ? h("p", { class: "effect", id: "confirm-effect" }, effect) : null,
      h("div", { class: "stack" },
        bigButton(t("confirm.yes"), onYes, { id: "btn-confirm", kind: "primary highlight" }),
        bigButton(t("confirm.no"), onNo, { id: "btn-confirm-no", kind: "secondary" })),
      timer ? timer.node : null),
  };
}

/** A code in groups of four ("3287 6604"): easier to read, copy and say back. */
export function groups(value) {
  return String(value).match(/.{1,4}/g) ?? [];
}

/** One secret shown large: its label, then its digits in groups (one box a digit). */
function secretBlock(s) {
  const spaced = [...s.value].join(" ");
  return h("div", { class: "secret", dataset: { secret: s.name } },
    h("p", { class: "secret-label" }, s.label),
    h("p", { class: "secret-code", "aria-label": `${s.label} ${spaced}` },
      groups(s.value).flatMap((g, i) => [
        i ? " " : null,
        h("span", { class: "group", "aria-hidden": "true" }, [...g].map((d) => h("span", { class: "digit" }, d))),
      ])));
}

/**
 * A result on the customer's own screen; its secrets (a PUK, a SIM number) shown large, grouped, one
 * box a digit, and spoken digit by digit (say), with buttons to hear them again and to copy them
 * (where the phone allows copying).
 */
export function txResult({ title, text, secrets = [], say, sayAgain, onDone }) {
  const copied = h("p", { class: "copied", id: "txres-copied", role: "status" });
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(secrets.map((s) => s.value).join(" "));
      copied.textContent = t("txres.copied");
    } catch {
      copied.textContent = t("txres.copy_failed");
    }
  };
  return {
    name: "tx-result",
    say,
    speak: true,
    node: screen("tx-result", title,
      text ? h("p", { class: "lead", id: "txres-text" }, text) : null,
      secrets.map(secretBlock),
      secrets.length ? h("p", { class: "secret-note" }, t("txres.secret_note")) : null,
      h("div", { class: "row" },
        h("button", { type: "button", class: "secondary repeat", id: "btn-txres-repeat", onclick: sayAgain },
          icon("speaker"), t("common.repeat")),
        secrets.length && navigator.clipboard
          ? h("button", { type: "button", class: "secondary", id: "btn-txres-copy", onclick: copy }, t("txres.copy"))
          : null),
      copied,
      bigButton(t("txres.done"), onDone, { id: "btn-result-done", kind: "primary highlight" })),
  };
}

export function notice({ name = "notice", title, text, onOk }) {
  return {
    name,
    say: text ? [title, text] : title,
    speak: true,
    node: screen(name, title, text ? h("p", { class: "lead", id: "notice-text" }, text) : null,
      onOk ? bigButton(t("common.ok"), onOk, { id: "btn-notice-ok" }) : null),
  };
}

export function rating({ onRate, onSkip }) {
  const faces = [1, 2, 3, 4, 5].map((n) =>
    h("button", { type: "button", class: `face face-${n}`, "data-rating": n, id: `rate-${n}`, onclick: () => onRate(n),
      "aria-label": t(`rate.${n}`) }, h("img", { src: `/static/customer/icons/rate-${n}.svg`, alt: "", width: 56, height: 56 }),
    h("span", {}, t(`rate.${n}`))));
  return {
    name: "rating",
    say: t("rate.say"),
    speak: true,
    node: screen("rating", t("rate.title"), h("div", { class: "faces" }, faces),
      h("button", { type: "button", class: "secondary", id: "btn-rate-skip", onclick: onSkip }, t("rate.skip"))),
  };
}

export function result({ items, onAgain }) {
  const summary = items.length
    ? items.map((i) => `${i.title}：${i.ok ? t("result.ok") : t("result.refused")}`).join("；")
    : t("result.none");
  return {
    name: "result",
    say: t("result.say", { summary }),
    speak: true,
    node: screen("result", t("result.title"),
      items.length
        ? h("ul", { class: "results", id: "results" }, items.map((i) =>
          h("li", { class: i.ok ? "ok" : "refused", dataset: { tx: i.id ?? "" } },
            h("strong", {}, i.title), " ", i.ok ? t("result.ok") : t("result.refused"),
            i.text ? h("p", {}, i.text) : null, (i.secrets ?? []).map(secretBlock))))
        : h("p", { class: "lead", id: "results" }, t("result.none")),
      h("p", { class: "lead" }, t("result.thanks")),
      bigButton(t("result.again"), onAgain, { kind: "secondary", id: "btn-again" })),
  };
}
