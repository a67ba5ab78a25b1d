// ui.mjs: boots static/app.js on the fake DOM against a fake gateway, for
// the tests of app.test.mjs and live.test.mjs. Not a test file itself.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';

import { Document, Storage } from './fakedom.mjs';

const indexHTML = await readFile(new URL('../static/index.html', import.meta.url), 'utf8');

let boots = 0;
const booted = new Set();

export const settle = async () => {
  for (let i = 0; i < 30; i++) await new Promise((r) => setImmediate(r));
};

/**
 * shutdown signs out every page booted so far, which closes its event
 * stream: each boot is a fresh app.js, and one left running would draw on
 * the next test's document (dom.js finds elements in the global document).
 * Call it after each test.
 */
export async function shutdown() {
  for (const ui of booted) {
    const out = ui.doc.getElementById('sign-out');
    if (out && !ui.$('session').hidden) out.click();
  }
  booted.clear();
  await settle();
}

/**
 * fieldError is the error said next to a field: its row's (pairs and
 * labels) or the element "<id>-error" of the page.
 */
export function fieldError(input) {
  const doc = input.ownerDocument;
  const row = input.closest('.row');
  const described = input.getAttribute('aria-describedby');
  const slot = described ? doc.getElementById(described) : row ? row.querySelector('.row-error') : doc.getElementById(`${input.id}-error`);
  assert.ok(slot, `a place for the errors of #${input.id}`);
  return slot.textContent;
}

/** setNavigator replaces the page's navigator (node 21+ has a read-only one). */
export function setNavigator(nav) {
  Object.defineProperty(globalThis, 'navigator', { value: nav, configurable: true, writable: true });
}

/** boot loads a fresh copy of app.js on a fresh document. */
export async function boot(gw, session = new Storage(), { navigator } = {}) {
  const doc = new Document(indexHTML);
  globalThis.document = doc;
  // No localStorage on this window: touching it would throw.
  globalThis.window = { sessionStorage: session };
  globalThis.fetch = gw.fetch;
  setNavigator(navigator);
  await import(`../static/app.js?boot=${++boots}`);
  await settle();
  const $ = (id) => {
    const e = doc.getElementById(id);
    assert.ok(e, `#${id}`);
    return e;
  };
  const ui = {
    doc,
    session,
    $,
    visible: (id) => {
      for (let e = $(id); e; e = e.parentElement) if (e.hidden) return false;
      return true;
    },
    type: (id, v) => {
      $(id).value = v;
    },
    click: async (idOrEl) => {
      (typeof idOrEl === 'string' ? $(idOrEl) : idOrEl).click();
      await settle();
    },
    submit: async (formId) => {
      const form = $(formId);
      const button = form.querySelector('button[type="submit"]');
      button.click();
      await settle();
    },
    rows: () => $('secrets-body').children.map((tr) => tr.children.map((td) => td.textContent)),
    passwords: () => doc.querySelectorAll('input[type="password"]').map((i) => i.value),
    signIn: async (token) => {
      ui.type('token', token);
      await ui.submit('sign-in-form');
    },
    openSecret: async (name) => {
      const b = $('secrets-body').querySelectorAll('button.link').find((x) => x.textContent === name);
      assert.ok(b, `a row for ${name}`);
      await ui.click(b);
    },
  };
  booted.add(ui);
  return ui;
}
