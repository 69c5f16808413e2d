// Spoken instructions with speechSynthesis: one utterance at a time, the last one repeatable.

let last = { parts: [""], lang: "zh-CN" };

/** Whether this browser can speak at all. */
export function canSpeak() {
  return typeof window.speechSynthesis !== "undefined" && typeof window.SpeechSynthesisUtterance !== "undefined";
}

function pickVoice(lang) {
  const voices = window.speechSynthesis.getVoices?.() ?? [];
  const base = lang.split("-")[0];
  return voices.find((v) => v.lang === lang) ?? voices.find((v) => v.lang.replace("_", "-").startsWith(base));
}

/** Speak text in lang (BCP 47), interrupting whatever was being said; it becomes the text to repeat. */
export function speak(text, lang = "zh-CN", { rate = 0.9 } = {}) {
  speakParts([text], lang, { rate });
}

/**
 * Speak several utterances one after another (queued), interrupting whatever was being said: a code
 * is handed over one digit an utterance, so no voice can read it as one big number.
 */
export function speakParts(parts, lang = "zh-CN", { rate = 0.9 } = {}) {
  const queue = parts.filter((x) => x);
  last = { parts: queue, lang };
  if (!canSpeak() || !queue.length) return;
  const synth = window.speechSynthesis;
  synth.cancel();
  const voice = pickVoice(lang);
  for (const text of queue) {
    const utterance = new SpeechSynthesisUtterance(text);
    utterance.lang = lang;
    utterance.rate = text.length === 1 ? rate * 0.8 : rate;
    if (voice) utterance.voice = voice;
    synth.speak(utterance);
  }
}

/**
 * A code (PUK, SIM number) as words to speak one digit at a time, never as one big number:
 * "1，2，3" in Chinese, "1, 2, 3" in English.
 */
export function digitByDigit(code, lang = "zh-CN") {
  return [...String(code)].join(lang.startsWith("zh") ? "，" : ", ");
}

/** Say the last instruction again. */
export function repeat() {
  speakParts(last.parts, last.lang);
}

/** The last text spoken (or that would have been spoken where speech is missing). */
export function lastSpoken() {
  return last.parts.join(" ");
}

/** Stop speaking. */
export function hush() {
  if (canSpeak()) window.speechSynthesis.cancel();
}
