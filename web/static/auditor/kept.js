// Checkpoints an auditor kept (signed notes of /checkpoint), in this browser's localStorage: every one
// the console sees is kept for the next visit, older ones can be pasted.  Verify now sends them; the
// server checks their signatures and says whether the log still extends them (fork, rollback).

const STORE = "rc.audit.kept";
const MAX_SEEN = 10; // the server takes at most 20 kept checkpoints
const MAX_PASTED = 10;

/** The checkpoint body's origin and size from a signed note's text, or null when it is not one. */
export function parseNote(text) {
  const cut = text.indexOf("\n\n");
  if (cut < 0 || !text.endsWith("\n")) return null;
  const lines = text.slice(0, cut).split("\n");
  const sigs = text.slice(cut + 2, -1).split("\n");
  if (lines.length < 3 || !/^\d+$/.test(lines[1]) || !sigs.every((l) => l.startsWith("— "))) return null;
  return { origin: lines[0], size: Number(lines[1]), body: text.slice(0, cut + 1) };
}

function load() {
  try {
    const list = JSON.parse(localStorage.getItem(STORE) ?? "[]");
    return Array.isArray(list) ? list.filter((k) => typeof k?.note === "string" && parseNote(k.note)) : [];
  } catch {
    return [];
  }
}

function save(list) {
  localStorage.setItem(STORE, JSON.stringify(list));
}

/** The kept checkpoints of the log ``origin``: [{note, size, how: "seen" | "pasted", at}]. */
export function kept(origin) {
  return load().filter((k) => parseNote(k.note).origin === origin);
}

/** Keep ``note`` (same body kept once).  Seen ones beyond MAX_SEEN drop from the middle: the first
 * one kept and the newest stay, so a rollback or an old rewrite stays visible. */
export function keep(note, how) {
  const parsed = parseNote(note);
  if (!parsed) return false;
  const list = load();
  if (list.some((k) => parseNote(k.note).body === parsed.body)) return true;
  list.push({ note, size: parsed.size, how, at: new Date().toISOString() });
  for (const [kind, max] of [["seen", MAX_SEEN], ["pasted", MAX_PASTED]]) {
    const mine = list.filter((k) => k.how === kind);
    if (mine.length > max) list.splice(list.indexOf(kind === "seen" ? mine[1] : mine[0]), 1);
  }
  save(list);
  return true;
}
