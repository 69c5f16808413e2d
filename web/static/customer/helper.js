// The holder's side of a helper (家属, issue 21): the invitation (a QR code shown large, and its link),
// the consent screen pushed when the helper says who they are, and the peer connection this phone
// offers the helper (the helper answers; messages from "helper:<call id>" are routed here).

import { OfferPeer } from "../agent/call.js";
import { refusalCode, request } from "../shared/api.js";
import { h, qrCode } from "../shared/dom.js";
import { t } from "../shared/i18n.js";
import { bigButton, question, screen } from "./screens.js";

/** The invitation: the QR code (SVG from the server) as large as the screen allows, and the link. */
export function inviteScreen({ svg, url, onDone }) {
  const qr = qrCode(svg, { id: "helper-qr", label: t("helper.invite_title") });
  return {
    name: "helper_invite",
    say: t("helper.invite_say"),
    speak: true,
    node: screen("helper_invite", t("helper.invite_title"), qr,
      h("p", {}, t("helper.invite_hint")),
      h("p", { class: "qr-link", id: "helper-link" }, url),
      bigButton(t("helper.done"), onDone, { id: "btn-helper-done" })),
  };
}

/** The helper said who they are: may they stay? */
export function consentScreen({ name, relation, onYes, onNo }) {
  const words = { name, relation: t(`relation.${relation}`) };
  return question("helper_consent", {
    title: t("helper.consent_title", words),
    say: t("helper.consent_say", words),
    body: h("p", {}, t("helper.consent_hint")),
    yes: [t("helper.consent_yes"), onYes, { id: "btn-helper-yes" }],
    no: [t("helper.consent_no"), onNo, { id: "btn-helper-no", kind: "secondary" }],
  });
}

/** The agent suggests a helper: the holder decides; a link is minted only on yes (with their own token). */
export function suggestScreen({ onYes, onNo }) {
  return question("helper_suggest", {
    title: t("helper.suggest_title"),
    say: t("helper.suggest_say"),
    yes: [t("helper.suggest_yes"), onYes, { id: "btn-suggest-yes" }],
    no: [t("helper.suggest_no"), onNo, { id: "btn-suggest-no", kind: "secondary" }],
  });
}

/** The peer connection to the helper, offered by this side ("to": the helper's key). */
export class HelperLink {
  constructor({ send, onRemote }) {
    this.send = send;
    this.onRemote = onRemote;
    this.peer = null;
    this.key = null;
  }

  /** A message from the helper (its answer or candidates): true when it was theirs. */
  owns(msg) {
    return typeof msg.sender === "string" && msg.sender.startsWith("helper:");
  }

  async relay(msg) {
    if (!this.peer || msg.sender !== this.key) return;
    if (msg.type === "sdp" && msg.kind === "answer") await this.peer.answer(msg.sdp);
    else if (msg.type === "ice") await this.peer.ice(msg);
  }

  /** The helper is (back) on the call: a new connection with our camera and microphone. */
  async connect(callId, key, stream, iceServers) {
    this.close();
    this.key = key;
    this.peer = new OfferPeer({ send: this.send, iceServers, to: key, onRemote: this.onRemote });
    await this.peer.offer(callId, stream ? [stream] : []);
  }

  close() {
    this.peer?.close();
    this.peer = null;
  }
}

/** A helper started this call and handed over ``/customer#holder=<code>``: the holder's own join token
 * for it ({token, call_id, …}), or {error: code}; ``null`` when the address carries no such link. */
export async function holderJoin() {
  const code = new URLSearchParams(location.hash.slice(1)).get("holder");
  if (!code) return null;
  history.replaceState(null, "", location.pathname + location.search); // used once: out of the address bar
  try {
    return await request("/api/customer/holder/join", { body: { code } });
  } catch (err) {
    return { error: refusalCode(err, "invite_unknown") };
  }
}
