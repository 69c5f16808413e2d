// A small element builder: h("button", {class: "big", onclick: f}, "text", child...).

/** Build an element; attributes starting with "on" become listeners; children are nodes or text. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(name, "");
    } else {
      el.setAttribute(name, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace all children of parent with the given nodes. */
export function mount(parent, ...nodes) {
  parent.replaceChildren(...nodes.flat().filter(Boolean));
}

/** A QR code from the server's SVG, parsed as XML (never as HTML) and adopted as nodes: an image with its label. */
export function qrCode(svg, { id, label }) {
  const parsed = new DOMParser().parseFromString(svg, "image/svg+xml").documentElement;
  return h("div", { class: "qr", id, role: "img", "aria-label": label },
    parsed.nodeName === "svg" ? document.importNode(parsed, true) : null);
}

/** Show a remote stream in a <video> (set again only when it is another stream) and start it. */
export function playInto(video, stream) {
  if (video.srcObject !== stream) video.srcObject = stream;
  video.play?.().catch(() => {});
}
