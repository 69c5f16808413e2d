// Small inline-SVG charts drawn by JS (no library): a sparkline of bars and a horizontal gauge.

const NS = "http://www.w3.org/2000/svg";

function el(tag, attrs) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

/** Bars for ``values`` (e.g. sessions per hour), oldest left. */
export function bars(values, { label = "", color = "#0b3d91" } = {}) {
  const w = 120;
  const hgt = 40;
  const svg = el("svg", { viewBox: `0 0 ${w} ${hgt}`, role: "img", "aria-label": label, preserveAspectRatio: "none" });
  const max = Math.max(1, ...values);
  const bw = w / Math.max(1, values.length);
  values.forEach((v, i) => {
    const bh = (v / max) * (hgt - 2);
    svg.append(el("rect", { x: i * bw + 0.5, y: hgt - bh, width: Math.max(1, bw - 1), height: bh, fill: color }));
  });
  svg.append(el("line", { x1: 0, y1: hgt - 0.5, x2: w, y2: hgt - 0.5, stroke: "#d5dbe3" }));
  return svg;
}

/** A gauge for a fraction 0..1 with a target mark. */
export function gauge(fraction, { target = null, label = "", good = "high" } = {}) {
  const w = 120;
  const svg = el("svg", { viewBox: `0 0 ${w} 40`, role: "img", "aria-label": label });
  svg.append(el("rect", { x: 0, y: 14, width: w, height: 12, rx: 6, fill: "#e6ebf2" }));
  if (fraction !== null && fraction !== undefined) {
    const ok = target === null ? true : good === "high" ? fraction >= target : fraction <= target;
    svg.append(el("rect", { x: 0, y: 14, width: Math.max(2, Math.min(1, fraction) * w), height: 12, rx: 6, fill: ok ? "#11703a" : "#b3261e" }));
  }
  if (target !== null) svg.append(el("line", { x1: target * w, y1: 8, x2: target * w, y2: 32, stroke: "#1b2430", "stroke-width": 2 }));
  return svg;
}
