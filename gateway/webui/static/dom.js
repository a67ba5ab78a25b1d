// dom.js: the small DOM helpers every module of the UI shares.

export function $(id) {
  const e = document.getElementById(id);
  if (!e) throw new Error(`element #${id} is missing from index.html`);
  return e;
}

/** h builds an element: h('td', {class: 'x'}, 'text', child). Strings become text nodes. */
export function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c !== undefined && c !== null) e.append(c);
  }
  return e;
}

export function show(e, visible) {
  e.hidden = !visible;
}
