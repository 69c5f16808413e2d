// The customer's own counter session: the password typed on the keypad, a request the agent asks
// them to confirm (its words from the server, never the agent), its result with the secrets large
// and spoken digit by digit, and the list at the end. Only this screen can confirm.

import { request } from "../shared/api.js";
import { currentLang, t } from "../shared/i18n.js";
import { speakParts } from "../shared/speech.js";
import * as S from "./screens.js";
import { backToCall, briefly, setCleanup, show, shown, state } from "./page.js";
import { stepResult } from "./steps.js";

/**
 * Call the counter API as this customer: X-Customer-Token is this call's join token (the counter
 * session is keyed by the call id); the agent never sees it, so only this screen can confirm.
 */
export function counterApi(path, body) {
  return request(`/api/customer/counter${path}`, { body, token: state.callToken });
}

/** A transaction as the result list shows it: its title, whether it went through, its words, its secrets. */
export function txItem(tx) {
  const en = currentLang() === "en";
  const secrets = secretsOf(tx);
  return {
    id: tx.id,
    title: (en ? tx.title_en : tx.title_zh) ?? tx.code,
    ok: tx.status === "done",
    text: withoutSecrets((en ? tx.text_en : tx.text_zh) ?? (en ? tx.reason : tx.reason_zh) ?? "", secrets),
    secrets,
  };
}

/** A request's words in the page's language, as the server gave them (never the agent). */
function confirmWords(tx) {
  const en = currentLang() === "en";
  const c = tx.confirm;
  return {
    title: en ? c.title_en : c.title_zh,
    what: en ? c.what_en : c.what_zh,
    effect: en ? c.effect_en : c.effect_zh,
    inputs: (c.inputs ?? []).map((i) => ({ label: en ? i.label_en : i.label_zh, value: en ? i.value_en : i.value_zh })),
  };
}

/**
 * The agent asks this customer to confirm request params.transaction_id: what it is, its inputs and
 * its effect come from this customer's own counter API; an id not waiting in their own session shows
 * nothing to confirm. The answer relayed to the agent carries the status only, never the result.
 */
export async function confirmStep(id, p) {
  const tid = Number(p.transaction_id);
  let tx = null;
  try {
    const counter = await counterApi("");
    tx = (counter.pending ?? []).find((x) => x.id === tid && !x.confirmed && x.confirm) ?? null;
  } catch {
    tx = null;
  }
  if (!tx) {
    stepResult(id, "cancelled", JSON.stringify({ transaction_id: p.transaction_id ?? null, error: "not_pending" }));
    return;
  }
  let answered = false;
  const answer = async (accept, why) => {
    if (answered) return;
    answered = true;
    timer.stop();
    let outcome = null;
    try {
      outcome = await counterApi(`/transactions/${tid}/confirm`, { accept });
    } catch (err) {
      stepResult(id, "failed", JSON.stringify({ transaction_id: tid, accept, error: String(err.reason ?? err.message ?? err) }));
      briefly(() => S.notice({ name: "confirmed", title: t("confirm.failed") }));
      return;
    }
    stepResult(id, accept ? "ok" : "cancelled", JSON.stringify({ transaction_id: tid, accept, why, status: outcome.status }));
    outcomeShown(outcome);
  };
  const timer = S.countdown(180, () => answer(false, "timeout"));
  show(() => S.confirmation({ ...confirmWords(tx), timer, onYes: () => answer(true), onNo: () => answer(false, "declined") }));
  setCleanup(() => timer.stop());
}

/** What became of a request this customer answered: its result on their screen (secrets only here). */
function outcomeShown(outcome) {
  state.results = state.results.filter((r) => r.id === undefined || r.id !== outcome.id);
  state.results.push(txItem(outcome));
  if (outcome.status === "done") {
    resultStep(outcome);
  } else if (outcome.status === "pending") {
    briefly(() => S.notice({ name: "confirmed", title: t("confirm.waiting") }));
    awaitApproval(outcome.id);
  } else {
    briefly(() => S.notice({ name: "confirmed", title: outcome.status === "declined" ? t("confirm.declined") : txItem(outcome).text || t("result.refused") }));
  }
}

/** A transaction's secrets in the page's language: [{name, label, value}]. */
function secretsOf(tx) {
  const en = currentLang() === "en";
  return (tx.secrets ?? []).map((s) => ({ name: s.name, label: en ? s.label_en : s.label_zh, value: String(s.value) }));
}

/** The server's words for a result with each secret taken out (the secrets are shown large apart). */
function withoutSecrets(text, secrets) {
  let out = text ?? "";
  for (const s of secrets) out = out.split(s.value).join(t("txres.below"));
  return out;
}

/** What to say for secrets: the label, then each digit as its own utterance (never one big number). */
function secretParts(secrets, key = "txres.say_label") {
  return secrets.flatMap((s) => [t(key, { label: s.label }), ...s.value]);
}

/** The result, its secrets large and spoken one digit at a time. */
function resultStep(outcome) {
  const build = () => {
    const en = currentLang() === "en";
    const lang = currentLang();
    const secrets = secretsOf(outcome);
    const text = withoutSecrets(en ? outcome.text_en : outcome.text_zh, secrets);
    return S.txResult({
      title: (en ? outcome.title_en : outcome.title_zh) ?? t("txres.title"),
      text,
      secrets,
      say: [text, ...secretParts(secrets)],
      sayAgain: () => speakParts(secrets.length ? secretParts(secrets, "txres.say_again") : [text], lang),
      onDone: backToCall,
    });
  };
  show(build);
}

/** Confirmed, waiting for a supervisor: show the result once it has run (poll the customer's API). */
export function awaitApproval(tid) {
  let tries = 0;
  const poll = async () => {
    if (state.ended || ++tries > 200) return;
    try {
      const counter = await counterApi("");
      const tx = [...(counter.recent ?? [])].find((x) => x.id === tid);
      if (tx && tx.status !== "pending") {
        // a step the agent pushed meanwhile stays: the result waits in the list at the end of the call
        if (shown?.name === "call" || shown?.name === "confirmed") outcomeShown(tx);
        else state.results = [...state.results.filter((r) => r.id !== tid), txItem(tx)];
        return;
      }
    } catch {
      // the session may be closed: stop asking
      return;
    }
    setTimeout(poll, 3000);
  };
  setTimeout(poll, 3000);
}
