// Keep my place (virtual hold) on the customer's page: the offer under the queue, the "kept" screen,
// the notification when the turn is near (where the browser allows), and the way back from the text's link.

import { request } from "../shared/api.js";
import { h } from "../shared/dom.js";
import { t } from "../shared/i18n.js";

const MOBILE = /^1[3-9][0-9]{9}$/;
let panel = null;

/** The offer shown under the queue; one node kept across re-renders so a half-typed number stays.
 *  ``onKeep(msisdn)``: keep my place; ``onBook(msisdn, unixSeconds)``: a scheduled call-back. */
export function holdPanel({ onKeep, onBook }) {
  if (panel) return panel;
  const phone = h("input", { id: "keep-phone", class: "chat-input", type: "tel", inputmode: "numeric", maxlength: "16",
    autocomplete: "tel", "aria-label": t("hold.phone"), placeholder: t("hold.phone") });
  const error = h("p", { class: "lead", id: "keep-error", role: "alert", hidden: true }, t("hold.bad_phone"));
  const form = h("div", { class: "keep-form", hidden: true }, phone, error,
    h("button", { type: "button", class: "big primary", id: "btn-keep-submit", onclick: () => {
      const number = phone.value.replace(/\D/g, "");
      error.hidden = MOBILE.test(number);
      if (!error.hidden) return;
      askToNotify();
      onKeep(number);
    } }, h("span", { class: "label" }, t("hold.submit"))));
  const number = () => {
    const digits = phone.value.replace(/\D/g, "");
    error.hidden = MOBILE.test(digits);
    return error.hidden ? digits : null;
  };
  const slots = h("div", { class: "callback-slots", hidden: true }, [30, 60, 120].map((n) =>
    h("button", { type: "button", class: "big secondary", id: `btn-callback-${n}`, onclick: () => {
      const digits = number();
      if (digits) onBook(digits, Math.round(Date.now() / 1000) + n * 60);
    } }, h("span", { class: "label" }, t("callback.in", { n })))));
  const submit = form.querySelector("#btn-keep-submit");
  panel = h("div", { class: "keep-place", id: "keep-place" },
    h("button", { type: "button", class: "big secondary", id: "btn-keep-place", onclick: () => {
      form.hidden = false;
      submit.hidden = false;
      slots.hidden = true;
      phone.focus();
    } }, h("span", { class: "label" }, t("hold.offer")), h("span", { class: "hint" }, t("hold.offer_hint"))),
    h("button", { type: "button", class: "big secondary", id: "btn-callback", onclick: () => {
      form.hidden = false;
      submit.hidden = true;
      slots.hidden = false;
      phone.focus();
    } }, h("span", { class: "label" }, t("callback.offer"))),
    form, slots);
  return panel;
}

/** Asked on the tap that keeps the place (browsers allow the question only on a user gesture). */
function askToNotify() {
  if ("Notification" in window && Notification.permission === "default") Notification.requestPermission().catch(() => {});
}

/** The place is kept: the page may close. */
export function keptScreen(returnS) {
  const text = t("hold.kept", { m: Math.max(1, Math.round(returnS / 60)) });
  return { name: "kept", say: text, speak: true,
    node: h("section", { class: "screen screen-kept", "data-screen": "kept", "aria-labelledby": "h-kept" },
      h("h1", { id: "h-kept", tabindex: "-1" }, t("hold.kept_title")), h("p", { class: "lead" }, text)) };
}

/** The turn is near and the page is still open: a system notification where allowed. */
export function notifyBack() {
  if ("Notification" in window && Notification.permission === "granted") {
    try {
      new Notification(t("hold.notice"));
    } catch {
      // some mobile browsers allow notifications only from a service worker: the text and the page suffice
    }
  }
}

/** The code of a link from the text (`/customer?hold=...`), removed from the address bar. */
export function takeHoldCode() {
  const code = new URLSearchParams(location.search).get("hold");
  if (code) history.replaceState(null, "", location.pathname);
  return code;
}

/** Book a call-back with this visit's join token; the booking ({id, preferred_at}) or null. */
export function bookCallback(token, msisdn, preferredAt) {
  return request("/api/customer/callbacks", { body: { token, msisdn, preferred_at: preferredAt } }).catch(() => null);
}

/** The call-back is booked: the page may close. */
export function bookedScreen(preferredAt) {
  const at = new Date(preferredAt * 1000).toLocaleTimeString(document.documentElement.lang || "zh-CN",
    { hour: "2-digit", minute: "2-digit", hour12: false });
  const text = t("callback.booked", { t: at });
  return { name: "callback-booked", say: text, speak: true,
    node: h("section", { class: "screen screen-booked", "data-screen": "callback-booked", "aria-labelledby": "h-booked" },
      h("h1", { id: "h-booked", tabindex: "-1" }, t("callback.booked_title")), h("p", { class: "lead" }, text)) };
}

/** The token of a call-back's invitation link (`/customer?invite=...`), removed from the address bar. */
export function takeInvite() {
  const token = new URLSearchParams(location.search).get("invite");
  if (token) history.replaceState(null, "", location.pathname);
  return token;
}

/** Exchange the link's code for this call's new join token: {token, care}, or null if no longer valid. */
export function comeBack(code) {
  return request("/api/customer/hold/return", { body: { code } }).catch(() => null);
}
