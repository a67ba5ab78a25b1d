// formkit.js: what every dialog shares: opening it with the page's old
// messages cleared, sending its form, and saying each error next to the
// field it is about (validate.js finds the field, before sending or from
// the gateway's answer). Every typed value is wiped once its request was
// sent, whatever the outcome, and when a dialog closes.

import * as F from './forms.js';
import { $ } from './dom.js';
import { fromAPI } from './validate.js';
import { wipeValues } from './values.js';

/** errorSlot is where an input's errors are said: its row's, or the element "<id>-error". */
function errorSlot(input) {
  const row = input.closest('.row');
  if (row) return row.querySelector('.row-error');
  return input.id ? document.getElementById(`${input.id}-error`) : null;
}

/** setFieldError says message next to input, and marks it invalid; false when it has no place for errors. */
export function setFieldError(input, message) {
  const slot = input && errorSlot(input);
  if (!slot) return false;
  slot.textContent = slot.textContent ? `${slot.textContent} ${message}` : message;
  input.setAttribute('aria-invalid', 'true');
  input.setAttribute('aria-describedby', slot.id);
  return true;
}

export function clearFieldErrors(root) {
  for (const slot of root.querySelectorAll('.field-error')) slot.textContent = '';
  for (const el of root.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
}

/**
 * rowInput finds the input of an error about rows of pairs or labels: by
 * the row's index (checked in the browser) or by key (the gateway names
 * keys), the key or the value part; the first row when neither matches.
 */
export function rowInput(box, e) {
  const rows = [...box.querySelectorAll('.row')];
  let row;
  if (e.row !== undefined) row = rows[e.row];
  else if (e.key !== undefined) row = rows.find((r) => r.querySelector('.row-key').value.trim() === e.key);
  row = row || rows[0];
  if (!row) return null;
  return row.querySelector(e.part === 'value' ? '.row-value' : '.row-key');
}

/**
 * showErrors puts each error of a FieldErrors next to its field (locate(e)
 * answers the input, or null), focuses the first, and says in the
 * dialog's alert area what could not be placed, or that fields are marked.
 */
export function showErrors(fe, locate, area) {
  const placed = [];
  const elsewhere = [];
  for (const e of fe.errors) {
    const el = locate(e);
    if (el && setFieldError(el, e.message)) placed.push(el);
    else elsewhere.push(e.message);
  }
  const n = new Set(placed).size;
  const marked = n === 0 ? '' : n === 1 ? 'Please correct the field marked below.' : `Please correct the ${n} fields marked below.`;
  area.textContent = [...elsewhere, marked].filter(Boolean).join(' ');
  if (placed.length > 0) placed[0].focus();
}

/**
 * createForms gives the dialogs of a page (app: notify, clearAlert, busy,
 * hold, from app.js) their shared behaviour.
 */
export function createForms(app) {
  /** open shows a dialog with no message left from before, on the page or in it. */
  function open(id, focusId) {
    const d = $(id);
    for (const a of d.querySelectorAll('.alert')) a.textContent = '';
    clearFieldErrors(d);
    app.notify('');
    app.clearAlert();
    d.showModal();
    if (focusId) $(focusId).focus();
  }

  /** wire makes every dialog forget what was typed when it closes (Cancel, Escape, or after a save). */
  function wire() {
    for (const d of document.querySelectorAll('dialog')) {
      d.addEventListener('close', () => {
        wipeValues(d);
        const form = d.querySelector('form');
        if (form) form.reset();
        clearFieldErrors(d);
        for (const box of d.querySelectorAll('.rows')) box.replaceChildren();
      });
      for (const b of d.querySelectorAll('button.cancel')) b.addEventListener('click', () => d.close());
    }
  }

  /**
   * submitter wires a dialog's form: build() makes the request from the
   * inputs (its FieldErrors keep the inputs), send(body) calls the API;
   * locate(error) finds the input an error is about. Values are wiped once
   * a request was sent, whatever its outcome.
   */
  function submitter(formId, errorId, build, send, locate = () => null) {
    const form = $(formId);
    const dialog = form.closest('dialog');
    const area = $(errorId);
    const report = (err) => {
      const fe = fromAPI(err);
      if (fe) showErrors(fe, locate, area);
      else area.textContent = F.describeError(err);
    };
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearFieldErrors(form);
      area.textContent = '';
      app.notify('');
      let body;
      try {
        body = build();
      } catch (err) {
        report(err);
        return;
      }
      const button = form.querySelector('button[type="submit"]');
      let refused = null;
      const ok = await app.busy(button, area, async () => {
        try {
          return await app.hold(() => send(body));
        } catch (err) {
          // The gateway refused a field: said next to it, below.
          if (fromAPI(err)) {
            refused = err;
            return undefined;
          }
          throw err;
        } finally {
          body = null;
          wipeValues(dialog);
        }
      });
      if (refused) report(refused);
      if (ok && dialog.open) dialog.close();
    });
  }

  return { open, wire, submitter };
}
