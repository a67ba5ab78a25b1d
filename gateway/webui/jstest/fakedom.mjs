// fakedom.mjs: just enough of a DOM to run static/app.js under node: it
// parses index.html (well-formed, as the Go tests keep it) and implements
// the element API app.js uses. Selectors are simple compounds only
// (tag, .class, #id, [attr="value"]), which is all app.js needs.
// Form controls treat line breaks as browsers do (HTML's value
// sanitization): a single-line <input> drops CR and LF from what it is
// given, and a <textarea> reports CR LF and CR as LF.
// Not a test file itself (node --test runs *.test.mjs).

const VOID = new Set(['meta', 'link', 'input', 'br', 'img', 'hr']);
// Input types whose value is one line: browsers strip CR and LF from it.
const SINGLE_LINE = new Set(['text', 'password', 'search', 'tel', 'url', 'email']);

class Node {
  constructor() {
    this.parentNode = null;
  }
  get parentElement() {
    return this.parentNode instanceof Element ? this.parentNode : null;
  }
  remove() {
    if (!this.parentNode) return;
    const sibs = this.parentNode.childNodes;
    sibs.splice(sibs.indexOf(this), 1);
    this.parentNode = null;
  }
}

export class Text extends Node {
  constructor(data) {
    super();
    this.data = data;
  }
  get textContent() {
    return this.data;
  }
}

class ClassList {
  constructor(el) {
    this.el = el;
  }
  #list() {
    return (this.el.getAttribute('class') || '').split(/\s+/).filter(Boolean);
  }
  contains(c) {
    return this.#list().includes(c);
  }
  add(c) {
    if (!this.contains(c)) this.el.setAttribute('class', [...this.#list(), c].join(' '));
  }
  remove(c) {
    this.el.setAttribute('class', this.#list().filter((x) => x !== c).join(' '));
  }
}

export class Element extends Node {
  constructor(doc, tag) {
    super();
    this.ownerDocument = doc;
    this.tagName = tag.toUpperCase();
    this.attrs = new Map();
    this.childNodes = [];
    this.listeners = {};
    this.classList = new ClassList(this);
    this._value = null; // input/textarea value once set
    this._checked = null;
    this.open = false; // <dialog>
  }
  get localName() {
    return this.tagName.toLowerCase();
  }
  // attributes
  getAttribute(k) {
    return this.attrs.has(k) ? this.attrs.get(k) : null;
  }
  setAttribute(k, v) {
    if (k === 'style' || k.startsWith('on')) throw new Error(`app.js set the attribute ${k}: forbidden by the CSP`);
    this.attrs.set(k, String(v));
  }
  removeAttribute(k) {
    this.attrs.delete(k);
  }
  hasAttribute(k) {
    return this.attrs.has(k);
  }
  get id() {
    return this.getAttribute('id') || '';
  }
  get className() {
    return this.getAttribute('class') || '';
  }
  set className(v) {
    this.setAttribute('class', v);
  }
  get hidden() {
    return this.hasAttribute('hidden');
  }
  set hidden(v) {
    if (v) this.attrs.set('hidden', '');
    else this.attrs.delete('hidden');
  }
  get disabled() {
    return this.hasAttribute('disabled');
  }
  set disabled(v) {
    if (v) this.attrs.set('disabled', '');
    else this.attrs.delete('disabled');
  }
  get title() {
    return this.getAttribute('title') || '';
  }
  set title(v) {
    this.setAttribute('title', v);
  }
  get type() {
    return (this.getAttribute('type') || (this.localName === 'button' ? 'submit' : 'text')).toLowerCase();
  }
  // form controls
  get value() {
    if (this.localName === 'select') {
      const opts = this.querySelectorAll('option');
      const sel = opts.find((o) => o._selected) || opts[0];
      return sel ? sel.value : '';
    }
    if (this.localName === 'option') return this.getAttribute('value') ?? this.textContent;
    if (this.localName === 'textarea') return (this._value ?? this.textContent).replace(/\r\n?/g, '\n');
    return this._value ?? this.getAttribute('value') ?? '';
  }
  set value(v) {
    if (this.localName === 'select') {
      for (const o of this.querySelectorAll('option')) o._selected = o.value === String(v);
      return;
    }
    let s = String(v);
    if (this.localName === 'input' && SINGLE_LINE.has(this.type)) s = s.replace(/[\r\n]/g, '');
    if (this.localName === 'input' && this.type === 'file') {
      if (s !== '') throw new Error('InvalidStateError: a file input can only be cleared');
      this.files = [];
    }
    this._value = s;
  }
  get checked() {
    return this._checked ?? this.hasAttribute('checked');
  }
  set checked(v) {
    this._checked = !!v;
  }
  reset() {
    for (const el of [...this.querySelectorAll('input'), ...this.querySelectorAll('textarea')]) {
      el._value = null;
      el._checked = null;
    }
    for (const s of this.querySelectorAll('select')) for (const o of s.querySelectorAll('option')) o._selected = false;
  }
  // tree
  get children() {
    return this.childNodes.filter((n) => n instanceof Element);
  }
  append(...nodes) {
    for (let n of nodes) {
      if (!(n instanceof Node)) n = new Text(String(n));
      n.remove();
      n.parentNode = this;
      this.childNodes.push(n);
    }
  }
  replaceChildren(...nodes) {
    for (const c of [...this.childNodes]) c.remove();
    this.append(...nodes);
  }
  get textContent() {
    return this.childNodes.map((n) => n.textContent).join('');
  }
  set textContent(v) {
    this.replaceChildren();
    if (v !== '' && v !== null && v !== undefined) this.append(new Text(String(v)));
  }
  *descendants() {
    for (const c of this.children) {
      yield c;
      yield* c.descendants();
    }
  }
  querySelectorAll(sel) {
    const m = matcher(sel);
    return [...this.descendants()].filter(m);
  }
  querySelector(sel) {
    return this.querySelectorAll(sel)[0] || null;
  }
  closest(sel) {
    const m = matcher(sel);
    for (let e = this; e; e = e.parentElement) if (m(e)) return e;
    return null;
  }
  // events
  addEventListener(type, fn) {
    (this.listeners[type] ||= []).push(fn);
  }
  dispatchEvent(ev) {
    ev.target ||= this;
    for (let e = this; e; e = ev.bubbles ? e.parentElement : null) {
      for (const fn of e.listeners[ev.type] || []) fn(ev);
    }
    return !ev.defaultPrevented;
  }
  focus() {
    this.ownerDocument.activeElement = this;
  }
  /** select selects all of a text field's value, as a person's Ctrl+A would. */
  select() {
    this.focus();
    this.selectionStart = 0;
    this.selectionEnd = this.value.length;
  }
  click() {
    if (this.disabled) return;
    this.dispatchEvent(event('click', { bubbles: true }));
    if (this.localName === 'button' && this.type === 'submit') {
      const form = this.closest('form');
      if (form) form.dispatchEvent(event('submit', { submitter: this }));
    }
  }
  // <dialog>
  showModal() {
    if (this.open) throw new Error('InvalidStateError: the dialog is already open');
    this.open = true;
  }
  close() {
    if (!this.open) return;
    this.open = false;
    this.dispatchEvent(event('close'));
  }
}

export function event(type, extra = {}) {
  return {
    type,
    bubbles: false,
    defaultPrevented: false,
    preventDefault() {
      this.defaultPrevented = true;
    },
    ...extra,
  };
}

function matcher(sel) {
  const s = sel.trim();
  if (!/^[a-z]*(?:[.#][\w-]+|\[[\w-]+(?:="[^"]*")?\])*$/i.test(s)) throw new Error(`fakedom: unsupported selector ${sel}`);
  const tag = (s.match(/^[a-z]+/i) || [''])[0].toLowerCase();
  const classes = [...s.matchAll(/\.([\w-]+)/g)].map((m) => m[1]);
  const ids = [...s.matchAll(/#([\w-]+)/g)].map((m) => m[1]);
  const attrs = [...s.matchAll(/\[([\w-]+)(?:="([^"]*)")?\]/g)].map((m) => [m[1], m[2]]);
  return (e) =>
    (!tag || e.localName === tag) &&
    classes.every((c) => e.classList.contains(c)) &&
    ids.every((i) => e.id === i) &&
    attrs.every(([k, v]) => (v === undefined ? e.hasAttribute(k) : (k === 'type' ? e.type : e.getAttribute(k)) === v));
}

export class Document {
  constructor(html) {
    this.activeElement = null;
    this.visibilityState = 'visible';
    this.listeners = {};
    this.documentElement = new Element(this, 'html');
    parseInto(this, html, this.documentElement);
  }
  createElement(tag) {
    return new Element(this, tag);
  }
  getElementById(id) {
    return this.documentElement.querySelector(`#${id}`);
  }
  querySelectorAll(sel) {
    return this.documentElement.querySelectorAll(sel);
  }
  querySelector(sel) {
    return this.documentElement.querySelector(sel);
  }
  get body() {
    return this.documentElement.querySelector('body');
  }
  addEventListener(type, fn) {
    (this.listeners[type] ||= []).push(fn);
  }
  dispatchEvent(ev) {
    ev.target ||= this;
    for (const fn of this.listeners[ev.type] || []) fn(ev);
    return !ev.defaultPrevented;
  }
  /** setVisibility hides or shows the tab, as switching tabs does. */
  setVisibility(state) {
    this.visibilityState = state;
    this.dispatchEvent(event('visibilitychange'));
  }
}

const entities = { amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'", nbsp: '\u00a0' };
const decode = (s) => s.replace(/&(amp|lt|gt|quot|#39|nbsp);/g, (_, e) => entities[e]);

/** parseInto parses well-formed HTML (no unquoted attributes) under root. */
function parseInto(doc, html, root) {
  const re = /<!--[\s\S]*?-->|<!doctype[^>]*>|<\/([a-z0-9]+)\s*>|<([a-z0-9]+)((?:\s+[a-z-]+(?:="[^"]*")?)*)\s*\/?>|([^<]+)/gi;
  const stack = [root];
  let m;
  let last = 0;
  while ((m = re.exec(html))) {
    if (m.index !== last) throw new Error(`fakedom: cannot parse at ${last}: ${html.slice(last, last + 40)}`);
    last = re.lastIndex;
    const top = stack[stack.length - 1];
    if (m[1]) {
      const tag = m[1].toLowerCase();
      if (top.localName !== tag) throw new Error(`fakedom: </${tag}> closes <${top.localName}>`);
      stack.pop();
    } else if (m[2]) {
      const tag = m[2].toLowerCase();
      if (tag === 'html') continue;
      const el = doc.createElement(tag);
      for (const a of m[3].matchAll(/([a-z-]+)(?:="([^"]*)")?/gi)) el.attrs.set(a[1].toLowerCase(), decode(a[2] ?? ''));
      top.append(el);
      if (!VOID.has(tag)) stack.push(el);
    } else if (m[4] !== undefined) {
      if (m[4].trim() !== '') top.append(new Text(decode(m[4])));
    }
  }
  if (last !== html.length) throw new Error('fakedom: trailing input');
  const open = stack.map((e) => e.localName).filter((t) => t !== 'html');
  if (open.length > 0) throw new Error(`fakedom: unclosed ${open.join(', ')}`);
}

/** everything visible or stored in the DOM: text, attributes and input values. */
export function dump(doc) {
  const parts = [];
  for (const e of doc.documentElement.descendants()) {
    for (const [k, v] of e.attrs) parts.push(`${k}=${v}`);
    if (e._value !== null) parts.push(`value=${e._value}`);
    for (const n of e.childNodes) if (n instanceof Text) parts.push(n.data);
  }
  return parts.join('\n');
}

/**
 * markup is what the page's markup holds (what a browser's outerHTML
 * shows): text and attributes, but not what form controls hold in memory.
 */
export function markup(doc) {
  const parts = [];
  for (const e of doc.documentElement.descendants()) {
    for (const [k, v] of e.attrs) parts.push(`${k}=${v}`);
    for (const n of e.childNodes) if (n instanceof Text) parts.push(n.data);
  }
  return parts.join('\n');
}

export class Storage {
  constructor() {
    this.map = new Map();
  }
  getItem(k) {
    return this.map.has(k) ? this.map.get(k) : null;
  }
  setItem(k, v) {
    this.map.set(k, String(v));
  }
  removeItem(k) {
    this.map.delete(k);
  }
}
