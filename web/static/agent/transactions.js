// Transactions: the catalog search (keyboard first), the selected item's form, running it with the
// customer's confirmation on their own screen, and the session's history.

import { api, h, mount, toast } from "../login/staff.js";
import { both } from "../shared/i18n.js";
import { refreshPanel } from "./panel.js";
import { $, pushStep, state, whyNot } from "./state.js";
import { formFields, readForm } from "./txform.js";

// ---- transactions -----------------------------------------------------------------------------

export async function refreshCatalog() {
  if (!state.call) return;
  const { session } = await api(`/api/counter/sessions/${encodeURIComponent(state.call.id)}`);
  const data = await api(`/api/counter/catalog?session=${encodeURIComponent(state.call.id)}`);
  state.catalog = data.transactions;
  renderPicker();
  document.body.dataset.catalogLevel = session.level;
}

function pickerItems() {
  const q = $("tx-search").value.trim().toLowerCase();
  return state.catalog.filter((t) => !q || t.code.includes(q) || t.title_zh.includes(q) || t.title_en.toLowerCase().includes(q));
}

export function renderPicker() {
  const items = pickerItems();
  if (state.highlight >= items.length) state.highlight = -1;
  $("tx-search").setAttribute("aria-expanded", String(items.length > 0));
  mount($("tx-list"), items.map((t, i) => h("li", {
    role: "option",
    id: `tx-opt-${t.code.replace(/\W/g, "-")}`,
    class: i === state.highlight ? "active" : "",
    tabindex: "-1",
    "aria-disabled": t.enabled ? "false" : "true",
    "aria-selected": state.selected?.code === t.code ? "true" : "false",
    dataset: { code: t.code, enabled: String(t.enabled) },
    onclick: () => select(t),
    onkeydown: (e) => { if (e.key === "Enter") select(t); },
  }, h("strong", {}, t.code), ` ${t.title_zh} · ${t.title_en} `, h("span", { class: "badge" }, t.level),
  t.enabled ? "" : h("div", { class: "why" }, whyNot(t)))));
  const active = items[state.highlight];
  if (active) $("tx-search").setAttribute("aria-activedescendant", `tx-opt-${active.code.replace(/\W/g, "-")}`);
  else $("tx-search").removeAttribute("aria-activedescendant");
}

/** In the search: ArrowDown/ArrowUp highlight, Enter opens the highlighted item (or the first one
 * the level allows), Escape clears. */
export function searchKey(event) {
  const items = pickerItems();
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    if (!items.length) return;
    const step = event.key === "ArrowDown" ? 1 : -1;
    state.highlight = state.highlight < 0 && step < 0 ? items.length - 1 : (state.highlight + step + items.length) % items.length;
    renderPicker();
    $("tx-list").querySelector("li.active")?.scrollIntoView({ block: "nearest" });
  } else if (event.key === "Enter") {
    event.preventDefault();
    const pick = items[state.highlight] ?? items.find((t) => t.enabled) ?? items[0];
    if (!pick) return;
    select(pick, true);
    // nothing to fill in: run it now (a confirm step still goes to the customer, who confirms on their screen)
    if (pick.enabled && !Object.keys(pick.input_schema?.properties ?? {}).length) $("tx-form").requestSubmit();
  } else if (event.key === "Escape" && $("tx-search").value) {
    event.preventDefault();
    $("tx-search").value = "";
    state.highlight = -1;
    renderPicker();
  }
}

/** Alt+T: a fresh search (the last one cleared), focused, with the catalog for the level now. */
export function openSearch() {
  if (!state.call) return;
  $("tx-search").value = "";
  state.highlight = -1;
  $("tx-search").focus();
  renderPicker();
  refreshCatalog().catch((err) => toast(err.message, "error"));
}

function select(t, focusForm = false) {
  if (!t.enabled) {
    toast(`${t.title_zh} ${t.title_en}: ${whyNot(t)}`, "error");
    return;
  }
  state.selected = t;
  $("tx-title").textContent = `${t.title_zh} · ${t.title_en} (${t.code})`;
  $("tx-meta").textContent = [t.changes_state ? both("staff.tx_change", { effect: t.effect }) : both("staff.tx_read_only"), t.needs_approval ? both("staff.tx_needs_approval") : "", t.notes].filter(Boolean).join(" · ");
  mount($("tx-fields"), formFields(t.input_schema));
  $("tx-form").hidden = false;
  renderPicker();
  if (focusForm) ($("tx-fields").querySelector("input, select, textarea") ?? $("btn-tx-run")).focus();
}

const TX_STATUSES = ["done", "pending", "refused", "failed", "declined", "running"]; // staff.tx_status.<status>

function statusText(o) {
  return TX_STATUSES.includes(o.status) ? both(`staff.tx_status.${o.status}`) : o.status;
}

/** A result as staff see it: a secret (a PUK) never reaches this page, only that it was shown. */
function resultText(o) {
  const shown = o.shown_to_customer?.length ? ` · ${both("staff.tx_shown_to_customer")}` : "";
  return `${o.text_zh ?? o.reason ?? ""}${shown}`;
}

export function renderHistory(transactions) {
  mount($("tx-history"), transactions.map((o) => h("tr", { dataset: { code: o.code, status: o.status } },
    h("td", {}, String(o.id)), h("td", {}, `${o.title_zh} (${o.code})`),
    h("td", {}, statusText(o), o.needs_approval && !o.approved ? ` · ${both("staff.tx_awaiting_approval")}` : ""),
    h("td", { class: "tx-result" }, resultText(o)))));
}

function setTxStatus(text, kind = "") {
  mount($("tx-status"), h("p", { class: kind }, text));
}

export async function runSelected(event) {
  event.preventDefault();
  const t = state.selected;
  if (!t || !state.call) return;
  let inputs;
  try {
    inputs = readForm($("tx-fields"), t.input_schema);
  } catch (err) {
    setTxStatus(err.message, "error");
    return;
  }
  const key = `${t.code}-${crypto.randomUUID()}`;
  const body = { code: t.code, inputs, idempotency_key: key };
  const url = `/api/counter/sessions/${state.call.id}/transactions`;
  $("btn-tx-run").disabled = true;
  try {
    // Every item, a look-up too, waits for the customer's confirmation on their own screen: the
    // step carries the request's id only, and their page shows the server's words for it.
    const outcome = await api(url, { method: "POST", body });
    if (outcome.status !== "pending") {
      setTxStatus(`${statusText(outcome)}: ${outcome.reason ?? ""}`, outcome.status === "done" ? "ok" : "error");
      return;
    }
    setTxStatus(both("staff.tx_waiting_confirm"));
    document.body.dataset.confirm = "waiting";
    const result = await pushStep("confirm", { transaction_id: outcome.id });
    document.body.dataset.confirm = result.status;
    const latest = (await api(`/api/counter/sessions/${state.call.id}`)).transactions.find((o) => o.id === outcome.id);
    const ok = latest.status === "done";
    setTxStatus(`${t.title_zh}: ${statusText(latest)} ${ok ? resultText(latest) : latest.reason ?? ""}`,
      ok ? "ok" : latest.status === "pending" ? "warn" : "error");
  } catch (err) {
    setTxStatus(err.message, "error");
  } finally {
    $("btn-tx-run").disabled = false;
    await refreshPanel();
  }
}
