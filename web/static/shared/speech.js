// Spoken instructions with speechSynthesis: one utterance at a time, the last one repeatable.

let last = { text: "", lang: "zh-CN" };

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
  last = { text, lang };
  if (!canSpeak() || !text) return;
  const synth = window.speechSynthesis;
  synth.cancel();
  const utterance = new SpeechSynthesisUtterance(text);
  utterance.lang = lang;
  utterance.rate = rate;
  const voice = pickVoice(lang);
  if (voice) utterance.voice = voice;
  synth.speak(utterance);
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
  speak(last.text, last.lang);
}

/** The last text spoken (or that would have been spoken where speech is missing). */
export function lastSpoken() {
  return last.text;
}

/** Stop speaking. */
export function hush() {
  if (canSpeak()) window.speechSynthesis.cancel();
}
