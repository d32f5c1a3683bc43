// A tiny element builder: text is always set as text (never parsed as HTML), so API data
// cannot inject markup, and no inline styles are needed (the CSP forbids them).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function mount(target, ...children) {
  target.replaceChildren();
  append(target, children);
  return target;
}

export function badge(text, kind = "") {
  return h("span", { class: `badge ${kind}` }, text);
}

export function decisionBadge(decision) {
  const d = (decision || "unknown").toLowerCase();
  return badge(d, d === "allow" ? "allow" : d === "deny" ? "deny" : "");
}

export function card(label, value, testid) {
  return h("div", { class: "card" }, h("div", { class: "label" }, label),
    h("div", { class: "value", "data-testid": testid }, value ?? "–"));
}

// columns: [{label, value: row => Node|string}]
export function table(columns, rows, { empty = "Nothing here yet.", testid } = {}) {
  if (!rows || rows.length === 0) return h("div", { class: "empty", "data-testid": testid }, empty);
  return h("table", { "data-testid": testid },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c.label)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, columns.map((c) => h("td", {}, c.value(r)))))));
}

// A text box that hides rows of the given table whose text does not contain the query.
export function filterBox(getTable, placeholder = "Filter…") {
  return h("input", { type: "search", placeholder, "aria-label": placeholder, oninput: (ev) => {
    const q = ev.target.value.trim().toLowerCase();
    const t = getTable();
    if (!t || !t.tBodies) return;
    for (const tr of t.tBodies[0].rows) tr.hidden = q !== "" && !tr.textContent.toLowerCase().includes(q);
  } });
}

let toastTimer;
export function toast(message, bad = false) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.className = bad ? "toast bad" : "toast";
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 4000);
}

export function errorBox(err) {
  return h("div", { class: "panel error", "data-testid": "page-error" }, err.message || String(err));
}

export function when(ts) {
  if (!ts) return "–";
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? String(ts) : d.toLocaleString();
}
