"""Accessibility measurements on the rendered page: axe-core, font sizes, touch-target sizes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

AXE = Path(__file__).parent / "vendor" / "axe.min.js"

#: Every visible text run with its computed font size, and every visible control with its box.
MEASURE = """
() => {
  const visible = (el) => {
    if (el.closest("[hidden]")) return false;
    const r = el.getBoundingClientRect();
    const cs = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && cs.visibility !== "hidden" && cs.display !== "none";
  };
  const texts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const el = node.parentElement;
    if (!node.textContent.trim() || !el || !visible(el) || el.closest("noscript")) continue;
    const size = parseFloat(getComputedStyle(el).fontSize);
    texts.push({ tag: el.tagName, text: node.textContent.trim().slice(0, 24), size });
  }
  const box = (el) => {
    const r = el.getBoundingClientRect();
    return { id: el.id, cls: String(el.className), w: r.width, h: r.height };
  };
  const selector = "button, a[href], input, select, textarea, [role=button]";
  const controls = [...document.querySelectorAll(selector)].filter(visible).map(box);
  const big = [...document.querySelectorAll("#screen .big")].filter(visible).map(box);
  const size = (el) => parseFloat(getComputedStyle(el).fontSize);
  const body = size(document.body);
  const h1 = [...document.querySelectorAll("#screen h1")].filter(visible).map(size);
  return { texts, controls, big, body, h1 };
}
"""


async def axe(page: Any, *, enhanced_contrast: bool = True) -> list[dict[str, Any]]:
    """axe-core violations of impact serious or critical (with AAA 7:1 contrast when asked)."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE))
    options = {"rules": {"color-contrast-enhanced": {"enabled": enhanced_contrast}}}
    result = await page.evaluate("(options) => axe.run(document, options)", options)
    assert result["passes"], "axe-core ran no rule: is the page empty?"
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


async def measure(page: Any) -> dict[str, Any]:
    """Font sizes and control sizes as rendered."""
    result: dict[str, Any] = await page.evaluate(MEASURE)
    return result


def senior_problems(m: dict[str, Any]) -> list[str]:
    """What breaks the senior-mode rules: text >= 20 px, headings larger, main buttons >= 64x64,
    every target >= 48x48."""
    problems = [f"text {t['text']!r} is {t['size']} px" for t in m["texts"] if t["size"] < 20]
    problems += [f"heading {h} px is not larger than body {m['body']} px" for h in m["h1"] if h <= m["body"]]
    problems += [f"main button {b['id'] or b['cls']} is {b['w']:.0f}x{b['h']:.0f}" for b in m["big"]
                 if b["w"] < 64 or b["h"] < 64]
    problems += [f"target {c['id'] or c['cls']} is {c['w']:.0f}x{c['h']:.0f}" for c in m["controls"]
                 if c["w"] < 48 or c["h"] < 48]
    return problems
