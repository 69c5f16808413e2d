// A transaction's input form built from its JSON Schema (the catalog's input_schema), and read back.

import { h } from "../login/staff.js";
import { both } from "../shared/i18n.js";

function resolve(schema, prop) {
  if (prop.$ref) return schema.$defs?.[prop.$ref.split("/").pop()] ?? prop;
  const options = prop.anyOf?.filter((p) => p.type !== "null");
  if (options?.length === 1) return { ...options[0], description: prop.description, default: prop.default, nullable: true };
  return prop;
}

/** Labels and inputs for every property of ``schema`` (strings, numbers, booleans, enums, dates). */
export function formFields(schema) {
  const props = schema.properties ?? {};
  const required = new Set(schema.required ?? []);
  const nodes = [];
  for (const [name, raw] of Object.entries(props)) {
    const prop = resolve(schema, raw);
    const id = `tx-in-${name}`;
    const label = h("label", { for: id }, `${prop.title ?? raw.title ?? name}${required.has(name) ? " *" : ""}`);
    let input;
    if (prop.enum) {
      input = h("select", { id, name }, required.has(name) ? "" : h("option", { value: "" }, "—"),
        prop.enum.map((v) => h("option", { value: String(v), selected: v === raw.default }, String(v))));
    } else if (prop.type === "boolean") {
      input = h("input", { id, name, type: "checkbox", checked: raw.default === true });
    } else if (prop.type === "integer" || prop.type === "number") {
      input = h("input", { id, name, type: "number", min: prop.minimum, max: prop.maximum, step: prop.type === "integer" ? 1 : "any", value: raw.default ?? undefined, required: required.has(name) });
    } else {
      const type = prop.format === "date" ? "date" : "text";
      input = h("input", { id, name, type, maxlength: prop.maxLength, pattern: prop.pattern, value: raw.default ?? undefined, required: required.has(name) });
    }
    input.dataset.kind = prop.type ?? (prop.enum ? "enum" : "string");
    if (raw.description) input.title = raw.description;
    nodes.push(label, input);
  }
  if (!nodes.length) nodes.push(h("span", { class: "muted" }, both("staff.tx_no_inputs")), h("span"));
  return nodes;
}

/** The values of the form as the API wants them; empty optional fields are left out. */
export function readForm(container, schema) {
  const out = {};
  const required = new Set(schema.required ?? []);
  for (const input of container.querySelectorAll("input, select")) {
    const name = input.name;
    if (!name) continue;
    if (input.type === "checkbox") {
      out[name] = input.checked;
      continue;
    }
    const value = input.value.trim();
    if (value === "") {
      if (required.has(name)) throw new Error(both("staff.tx_fill_in", { name }));
      continue;
    }
    out[name] = input.dataset.kind === "integer" ? parseInt(value, 10) : input.dataset.kind === "number" ? Number(value) : value;
  }
  return out;
}
