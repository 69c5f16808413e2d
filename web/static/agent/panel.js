// The customer panel: the counter session as the server states it (level, consent, which identity steps
// are possible), claim, consent, service password, and the evidence viewer.

import { api, clock, h, mount, toast } from "../login/staff.js";
import { both } from "../shared/i18n.js";
import { $, state, whyNot } from "./state.js";
import { refreshCatalog, renderHistory } from "./transactions.js";
import { refreshWorkOrders } from "./wrapup.js";

// ---- the customer panel -----------------------------------------------------------------------

export async function refreshSession() {
  if (!state.call) return;
  const data = await api(`/api/counter/sessions/${state.call.id}`);
  state.session = data.session;
  const s = data.session;
  $("level").textContent = s.level;
  document.body.dataset.level = s.level;
  $("level-note").textContent = s.level_note ?? "";
  $("consent-state").textContent = both(`staff.consent.${s.face_consent === null ? "none" : s.face_consent ? "yes" : "no"}`);
  $("consent-state").className = `badge ${s.face_consent === null ? "" : s.face_consent ? "ok" : "warn"}`;
  // Which identity steps are possible now, and why not, is the server's answer (counter/levels.py):
  // nothing about levels or paths is decided here.
  $("btn-attest").hidden = s.path !== "attestation";
  $("consent-note").hidden = s.path !== "attestation";
  if (s.path === "attestation") $("consent-note").textContent = whyNot(s.steps.face);
  document.body.dataset.faceConsent = String(s.face_consent);
  document.body.dataset.path = s.path;
  for (const [id, step] of [["btn-face", "face"], ["btn-liveness", "face"], ["btn-attest", "attestation"]]) {
    const why = s.steps[step];
    $(id).title = why.possible ? "" : whyNot(why);
    // a declined or path-foreign step cannot be taken at all; others answer with their reason when tried
    if (!state.call.ended) $(id).disabled = ["face_declined", "face_consented"].includes(why.code);
  }
  mount($("evidence"), s.evidence.map((e) => h("li", {}, `${e.level} · ${e.method} · ${clock(e.at)} · `,
    e.evidence.map((sha) => h("code", { title: sha }, `${sha.slice(0, 10)}… `)))));
  renderHistory(data.transactions);
  $("btn-evidence").disabled = Boolean(state.call.ended);
  if (s.account) {
    try {
      const acct = await api(`/api/counter/sessions/${state.call.id}/account`);
      mount($("account"), h("div", {}, `${acct.holder.name} · ${acct.holder.id_number} · ${acct.plan} · `,
        h("span", { class: acct.status === "active" ? "badge ok" : "badge warn" }, acct.status)));
    } catch (err) {
      mount($("account"), h("span", { class: "error" }, err.message));
    }
  }
  await refreshWorkOrders();
}

/** The session and the catalog read again after an action, whatever it did (a failure is already said). */
export async function refreshPanel() {
  await refreshSession().catch(() => {});
  await refreshCatalog().catch(() => {});
}

export async function claim(event) {
  event.preventDefault();
  try {
    await api(`/api/counter/sessions/${state.call.id}/claim`, {
      method: "POST",
      body: { msisdn: $("claim-msisdn").value.trim(), claimed_name: $("claim-name").value.trim() },
    });
    await refreshSession();
    await refreshCatalog();
  } catch (err) {
    toast(err.message, "error");
  }
}

export async function consent(yes) {
  try {
    await api(`/api/counter/sessions/${state.call.id}/consent`, { method: "POST", body: { face_consent: yes } });
    await refreshSession();
  } catch (err) {
    toast(err.message, "error");
  }
}

export async function password(event) {
  event.preventDefault();
  try {
    await api(`/api/counter/sessions/${state.call.id}/verify-password`, { method: "POST", body: { password: $("service-password").value } });
    $("service-password").value = "";
    await refreshSession();
    await refreshCatalog();
  } catch (err) {
    toast(err.message, "error");
  }
}

// ---- the evidence viewer: full-size stills beside the real-name photo on file ----------------------

const EVIDENCE_KINDS = { id_still: "staff.evidence_id", live_face: "staff.evidence_face", photo_on_file: "staff.evidence_photo" };

/** Alt+E: the customer's ID still and live face at the size they were taken, zoomable (+ / - / 0 on a
 * focused picture), beside the photo on file, with the fields read from the card.  Served to this
 * session's agent only while the call is live; the server audits each opening. */
export async function openEvidence() {
  if (!state.call || state.call.ended) return;
  let data;
  try {
    data = await api(`/api/counter/sessions/${encodeURIComponent(state.call.id)}/identity/evidence`);
  } catch (err) {
    toast(err.message, "error");
    return;
  }
  const newest = ["id_still", "live_face", "photo_on_file"].map((kind) => data.images.find((i) => i.kind === kind)).filter(Boolean);
  const figures = newest.map((item) => {
    const img = h("img", { src: item.url, alt: both(EVIDENCE_KINDS[item.kind]), width: String(item.width), height: String(item.height), dataset: { kind: item.kind, zoom: "1" } });
    const box = h("div", { class: "zoom-box", tabindex: "0", role: "group", "aria-label": `${both(EVIDENCE_KINDS[item.kind])} ${item.width}x${item.height}` }, img);
    const zoom = (factor) => {
      const z = factor === 0 ? 1 : Math.min(4, Math.max(0.25, Number(img.dataset.zoom) * factor));
      img.dataset.zoom = String(z);
      img.width = Math.round(item.width * z);
      img.height = Math.round(item.height * z);
    };
    box.addEventListener("keydown", (e) => {
      if (e.key === "+" || e.key === "=") zoom(1.25);
      else if (e.key === "-") zoom(0.8);
      else if (e.key === "0") zoom(0);
      else return;
      e.preventDefault();
    });
    return h("figure", { dataset: { kind: item.kind } },
      h("figcaption", {}, `${both(EVIDENCE_KINDS[item.kind])} · ${item.width}x${item.height} `,
        h("button", { type: "button", onclick: () => zoom(1.25) }, `${both("staff.evidence_zoom")} +`),
        h("button", { type: "button", onclick: () => zoom(0.8) }, "−"),
        h("button", { type: "button", onclick: () => zoom(0) }, "1:1")),
      box);
  });
  const fields = Object.entries(data.fields ?? {});
  mount($("evidence-body"),
    figures.length ? figures : h("p", { class: "muted" }, both("staff.evidence_none")),
    fields.length ? h("dl", { class: "fields" }, h("dt", {}, both("staff.evidence_fields")), fields.map(([k, v]) => h("dd", {}, `${k}: ${v}`))) : "");
  $("evidence-dialog").showModal();
  document.body.dataset.evidence = String(data.audit_seq);
  ($("evidence-body").querySelector(".zoom-box") ?? $("btn-evidence-close")).focus();
}
