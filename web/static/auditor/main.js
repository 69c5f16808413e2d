// The auditor console: search, a session's timeline (each step, with evidence hashes and, on request,
// the personal data, which is itself audited), the recording beside it, verify now (with the
// checkpoints kept in this browser: a fork or rollback is shown loudly), export.

import { api, clock, h, header, mount, requireUser, toast } from "../login/staff.js";
import { request } from "../shared/api.js";
import { both } from "../shared/i18n.js";
import { keep, kept, parseNote } from "./kept.js";

const $ = (id) => document.getElementById(id);
const state = { query: null, next: null, origin: null };
/** Problems that mean the log is not the one the auditor saw, loudest first. */
const ALERTS = [["fork", "auditor.alert_fork"], ["rollback", "auditor.alert_rollback"], ["witness_quorum", "auditor.alert_quorum"]];

const KIND = [
  ["identity.", "identity"], ["transaction.", "transaction"], ["call.", "call"], ["auditor.", "auditor"],
  ["session.", "session"], ["recording.", "recording"], ["consent.", "consent"],
];

/** Timeline steps named in both languages (``auditor.label.<action>``; the chat's words are personal
 * data, shown on request). */
const LABELLED = ["call.chat", "session.claim", "session.rating", "session.wrap_up", "consent.face"];

function kind(action) {
  return KIND.find(([prefix]) => action.startsWith(prefix))?.[1] ?? "other";
}

function query() {
  const form = new FormData($("search-form"));
  const q = new URLSearchParams();
  for (const [k, v] of form.entries()) {
    if (!v) continue;
    q.set(k, k === "since" ? new Date(`${v}T00:00:00`).toISOString() : v);
  }
  return q;
}

async function search(event, more = false) {
  event?.preventDefault();
  if (!more) state.query = query();
  const q = new URLSearchParams(state.query);
  q.set("limit", "50");
  if (more && state.next !== null) q.set("after", String(state.next));
  try {
    const data = await api(`/api/audit/entries?${q}`);
    state.next = data.next_after;
    const rows = data.entries.map((e) => h("tr", { dataset: { seq: String(e.seq), action: e.entry.action } },
      h("td", {}, String(e.seq)), h("td", {}, `${e.entry.time.slice(0, 10)} ${clock(e.entry.time)}`), h("td", {}, e.entry.action),
      h("td", {}, `${e.entry.actor_role}:${e.entry.actor_id}`), h("td", { class: e.entry.outcome === "ok" ? "ok" : "error" }, e.entry.outcome),
      h("td", {}, e.entry.session_id ? h("a", { href: `#session=${encodeURIComponent(e.entry.session_id)}`, class: "session-link" }, e.entry.session_id) : "")));
    if (more) $("results").append(...rows);
    else mount($("results"), rows.length ? rows : h("tr", {}, h("td", { colspan: "6", class: "muted" }, both("auditor.no_entries"))));
    $("btn-more").hidden = data.entries.length < 50;
  } catch (err) {
    toast(err.message, "error");
  }
}

function describe(e) {
  const d = e.details ?? {};
  const bits = [];
  if (LABELLED.includes(e.action)) bits.push(both(`auditor.label.${e.action}`));
  if (d.code) bits.push(d.code);
  if (d.score !== undefined) bits.push(`score ${Number(d.score).toFixed(3)}`);
  if (d.threshold !== undefined) bits.push(`threshold ${Number(d.threshold).toFixed(3)}`);
  if (d.decision) bits.push(d.decision);
  if (d.level) bits.push(`level ${d.level}`);
  if (d.rating !== undefined) bits.push(`rating ${d.rating}`);
  const rest = Object.entries(d).filter(([k]) => !["code", "score", "threshold", "decision", "level", "rating"].includes(k));
  if (rest.length) bits.push(rest.map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" "));
  return bits.join(" · ");
}

async function timeline(sessionId) {
  $("timeline-panel").hidden = false;
  $("timeline-session").textContent = sessionId;
  const entries = [];
  let after = -1;
  for (;;) {
    const data = await api(`/api/audit/entries?session=${encodeURIComponent(sessionId)}&limit=200&after=${after}`);
    entries.push(...data.entries);
    if (data.entries.length < 200) break;
    after = data.next_after;
  }
  const items = entries.map((e) => ({ time: e.entry.time, seq: e.seq, node: entryNode(e) }));
  try {
    const record = await api(`/api/consoles/sessions/${encodeURIComponent(sessionId)}`);
    const audited = new Set(entries.map((e) => e.entry.action));
    items.push(...recordItems(record).filter((i) => !audited.has(i.action)));
  } catch (err) {
    if (err.status !== 404) toast(err.message, "error");
  }
  items.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : (a.seq ?? 1e12) - (b.seq ?? 1e12)));
  mount($("timeline"), items.map((i) => i.node));
  document.body.dataset.timeline = sessionId;
  // focus moves to the timeline's heading and a live region says what opened (with how many steps)
  $("timeline-announce").textContent = "";
  $("h-timeline").focus();
  requestAnimationFrame(() => { $("timeline-announce").textContent = both("auditor.timeline_opened", { id: sessionId, n: items.length }); });
  await recording(sessionId);
}

/** Steps kept in the counter session's record (consent, identity evidence, rating, wrap-up, notes); the
 * timeline leaves out a record step whose action the audit log has already (the audited one is exact). */
function recordItems(r) {
  const item = (time, action, text) => ({
    time,
    action,
    node: h("li", { class: `session ${kind(action)}`, dataset: { action } },
      h("div", {}, h("span", { class: "seq" }, `${clock(time)} `), h("strong", {}, action), " · ", text)),
  });
  const out = [];
  if (r.face_consent !== null) out.push(item(r.created_at, "session.consent", both(r.face_consent ? "auditor.consent_yes" : "auditor.consent_no")));
  for (const e of r.evidence) {
    out.push(item(e.at, `session.level.${e.level}`, `${e.method} · ${e.recorded_by} · ${e.evidence.map((s) => s.slice(0, 12)).join(", ")}`));
  }
  for (const n of r.notes) out.push(item(n.at, "session.note", `${n.author}: ${n.text}`));
  if (r.closed_at) out.push(item(r.closed_at, "session.closed", both("auditor.wrap_up", { code: r.wrap_up })));
  if (r.rating !== null) out.push(item(r.closed_at ?? r.created_at, "session.rating", `${both("auditor.rating", { n: r.rating })} ${r.rating_comment ?? ""}`));
  out.push(item(r.created_at, "session.opened", both("auditor.session_opened", { agent: r.agent, seq: r.view_logged_as })));
  return out;
}

function entryNode(e) {
  const x = e.entry;
  const li = h("li", { class: `${kind(x.action)} ${x.outcome}`, dataset: { action: x.action, seq: String(e.seq) } },
    h("div", {}, h("span", { class: "seq" }, `#${e.seq} ${clock(x.time)} `), h("strong", {}, x.action), ` · ${x.actor_role}:${x.actor_id} · `,
      h("span", { class: x.outcome === "ok" ? "badge ok" : "badge bad" }, x.outcome)),
    h("div", { class: "muted" }, describe(x), x.reason ? ` · ${x.reason}` : ""),
    x.evidence?.length ? h("div", { class: "muted" }, `${both("auditor.evidence")}: `, x.evidence.map((s) => h("code", { title: s }, `${s.slice(0, 12)}… `))) : "");
  if (e.personal_stored) {
    li.append(h("button", { type: "button", class: "personal-btn", onclick: () => viewPersonal(e.seq, li) }, both("auditor.view_personal")));
  } else if (e.personal_purged) {
    li.append(h("div", { class: "muted" }, both("auditor.personal_purged")));
  }
  return li;
}

async function viewPersonal(seq, li) {
  try {
    const data = await api(`/api/audit/entries/${seq}?personal=1`);
    li.append(h("pre", { class: "json personal" }, JSON.stringify(data.personal, null, 2)),
      h("div", { class: "muted" }, both("auditor.view_logged", { seq: data.view_logged_as })));
    await views();
  } catch (err) {
    toast(err.message, "error");
  }
}

async function recording(sessionId) {
  let data;
  try {
    data = await api(`/api/recordings?call=${encodeURIComponent(sessionId)}`);
  } catch (err) {
    mount($("recording"), h("p", { class: "muted" }, err.status === 404 ? both("auditor.no_recordings_api") : err.message));
    return;
  }
  if (!data.recordings.length) {
    mount($("recording"), h("p", { class: "muted" }, both("auditor.no_recording")));
    return;
  }
  mount($("recording"), data.recordings.map((r) => {
    const status = h("div", { class: "muted" }, "…");
    const box = h("div", { class: "recording", dataset: { recording: r.id } },
      h("div", {}, h("strong", {}, r.id), ` · ${clock(r.started_at)}`),
      // a call whose server stopped goes on in a next part, linked to the one before
      r.previous_id ? h("div", { class: "muted part-link", dataset: { previous: r.previous_id } },
        both("auditor.recording_part", { part: r.part, previous: r.previous_id })) : null,
      status,
      h("button", { type: "button", class: "primary play-btn", onclick: () => play(r.id, box) }, `▶ ${both("auditor.play")}`));
    api(`/api/recordings/${encodeURIComponent(r.id)}`).then((info) => {
      const bad = info.verification.filter((c) => c.status !== "ok");
      mount(status, info.intact
        ? h("span", { class: "badge ok" }, `✓ ${both("auditor.segments_ok", { n: info.segments.length })}`)
        : h("span", { class: "badge bad" }, `✗ ${bad.map((c) => `#${c.index} ${c.status}`).join(", ") || both("auditor.no_segments")}`));
      box.dataset.intact = String(info.intact);
    }).catch((err) => mount(status, h("span", { class: "error" }, err.message)));
    return box;
  }));
}

/** Start an audited playback: the segments play one after another in one <video>. */
async function play(rid, box) {
  try {
    const ticket = await api(`/api/recordings/${encodeURIComponent(rid)}/play`, { method: "POST" });
    const urls = ticket.segments.map((s) => s.url);
    const video = h("video", { controls: true, autoplay: true, width: "380", class: "player" });
    let i = 0;
    const next = () => {
      if (i < urls.length) video.src = urls[i++];
    };
    video.addEventListener("ended", next);
    next();
    box.querySelector("video")?.remove();
    box.append(video);
    document.body.dataset.playing = rid;
    await views();
  } catch (err) {
    toast(err.message, "error");
  }
}

async function checkpoint() {
  try {
    const cp = await api("/api/audit/checkpoint/latest");
    $("checkpoint").textContent = `${both("auditor.entries", { n: cp.tree_size })} · ${clock(cp.time)} · key ${cp.key_id.slice(0, 12)}`;
  } catch (err) {
    $("checkpoint").textContent = err.message;
  }
}

/** The log's origin and note verifier key (what the Go verifier takes), to copy. */
async function logKey() {
  const key = await api("/.well-known/audit-key");
  state.origin = key.origin;
  $("log-origin").textContent = key.origin;
  $("log-vkey").value = key.note_verifier_key;
}

/** Keep the newest signed checkpoint this console sees, for the next visit. */
async function seeCheckpoint() {
  try {
    keep(await (await request("/checkpoint", { raw: true })).text(), "seen");
  } catch (err) {
    if (err.code === "network") throw err; // none signed yet (or none served): nothing to keep
  }
  showKept();
}

function showKept() {
  const list = kept(state.origin);
  $("kept-count").textContent = both("auditor.kept_count", { n: list.length });
  mount($("kept-list"), list.map((k) => h("li", { dataset: { size: String(k.size), how: k.how } },
    `${k.size} · ${both(k.how === "seen" ? "auditor.kept_seen" : "auditor.kept_pasted")} · ${k.at.slice(0, 10)} ${clock(k.at)}`)));
  document.body.dataset.kept = String(list.length);
}

function keepPasted() {
  const text = `${$("kept-paste").value.trim()}\n`;
  const note = parseNote(text);
  if (!note || note.origin !== state.origin || !keep(text, "pasted")) {
    toast(both("auditor.kept_bad"), "error");
    return;
  }
  $("kept-paste").value = "";
  toast(both("auditor.kept_added", { size: note.size }));
  showKept();
}

async function copyKey() {
  $("log-vkey").select();
  try {
    await navigator.clipboard.writeText($("log-vkey").value);
    toast(both("auditor.copied"));
  } catch {
    // no clipboard permission (plain http): the key stays selected for Ctrl+C
  }
}

function alarm(kind, key) {
  $("verify-alert").textContent = both(key);
  $("verify-alert").dataset.kind = kind;
  $("verify-alert").hidden = false;
}

async function verify() {
  $("btn-verify").disabled = true;
  $("verify-state").textContent = both("auditor.verifying");
  $("verify-alert").hidden = true;
  delete $("verify-alert").dataset.kind;
  try {
    const checkpoints = kept(state.origin).map((k) => k.note);
    const report = await api("/api/audit/verify", { method: "POST", body: { checkpoints } });
    $("verify-state").textContent = report.ok
      ? `✓ ${both("auditor.intact", { entries: report.entries, checkpoints: report.checkpoints })}`
      : `✗ ${both("auditor.problem", { seq: report.first_problem?.seq, message: report.first_problem?.message })}`;
    $("verify-state").className = `verify-state ${report.ok ? "ok" : "error"}`;
    const loud = ALERTS.find(([kind]) => report.problems.some((p) => p.kind === kind));
    if (loud) alarm(...loud);
    document.body.dataset.verified = report.ok ? "ok" : "failed";
    await Promise.all([checkpoint(), seeCheckpoint()]);
    await views();
  } catch (err) {
    $("verify-state").textContent = err.message;
    if (err.code === "bad_checkpoint") {
      alarm("rejected", "auditor.alert_rejected");
      document.body.dataset.verified = "failed";
    }
  } finally {
    $("btn-verify").disabled = false;
  }
}

async function exportBundle(event) {
  event.preventDefault();
  const q = new URLSearchParams({ from: $("export-from").value || "0" });
  if ($("export-to").value) q.set("to", $("export-to").value);
  try {
    const resp = await request(`/api/audit/export?${q}`, { raw: true });
    const url = URL.createObjectURL(await resp.blob());
    const a = h("a", { href: url, download: "audit-bundle.json" });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    document.body.dataset.exported = "1";
    await views();
  } catch (err) {
    toast(err.message, "error");
  }
}

async function views() {
  const data = await api("/api/audit/entries?action=auditor&limit=200");
  const recent = data.entries.slice(-20).reverse();
  mount($("views"), recent.length
    ? recent.map((e) => h("li", { dataset: { action: e.entry.action } }, `#${e.seq} ${clock(e.entry.time)} ${e.entry.actor_id} · ${e.entry.action}`,
      e.entry.details?.seq !== undefined ? ` (#${e.entry.details.seq})` : "", e.entry.session_id ? ` · ${e.entry.session_id}` : ""))
    : h("li", { class: "muted" }, both("auditor.none_yet")));
}

function route() {
  const m = location.hash.match(/session=([^&]+)/);
  if (m) timeline(decodeURIComponent(m[1])).catch((err) => toast(err.message, "error"));
}

async function boot() {
  header(await requireUser("auditor"));
  $("search-form").addEventListener("submit", search);
  $("btn-more").addEventListener("click", (e) => search(e, true));
  $("btn-verify").addEventListener("click", verify);
  $("export-form").addEventListener("submit", exportBundle);
  $("btn-keep").addEventListener("click", keepPasted);
  $("btn-copy-vkey").addEventListener("click", copyKey);
  for (const [id, key] of [["t-origin", "auditor.origin"], ["t-vkey", "auditor.key_title"], ["btn-copy-vkey", "auditor.copy"],
    ["t-kept", "auditor.kept_title"], ["t-kept-paste", "auditor.kept_paste"], ["btn-keep", "auditor.kept_add"]]) {
    $(id).textContent = both(key);
  }
  window.addEventListener("hashchange", route);
  await logKey();
  await Promise.all([checkpoint(), views(), seeCheckpoint()]);
  route();
  document.body.dataset.ready = "1";
}

boot().catch((err) => toast(err.message, "error"));
