// values.js: editing secret values so that they are sent exactly as entered
// (single line, multi-line with a chosen line break, or a file's content),
// and forgetting them after every request.

import * as F from './forms.js';
import { h, show } from './dom.js';
import { generatorTool } from './generator.js';

/** valueFields: the state of each value field, by its element. */
const valueFields = new WeakMap();

/**
 * valueField is the editor of one secret value, sent exactly as entered.
 *
 * A browser's <input> silently drops line breaks (a pasted PEM key would be
 * stored broken, and nobody could see it since values are never shown), and
 * a <textarea> reports every line break as LF whatever was pasted. So:
 *  - single line (default): a password field; pasting or dropping text with
 *    line breaks into it switches to multi-line instead of losing them;
 *  - multi-line: a masked textarea and an explicit line break choice (LF or
 *    CR LF), applied to every line break when the value is sent; a paste
 *    with CR LF breaks picks CR LF, and a paste that mixes kinds is refused;
 *  - from a file: the file's exact content (UTF-8, any line breaks, a byte
 *    order mark kept), held in memory, never in the page.
 * read() gives the value to send; wipe() forgets it.
 */
export function valueField(id) {
  const editorAttrs = { id, class: 'row-value', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off' };
  const single = h('input', { ...editorAttrs, type: 'password' });
  const multi = h('textarea', { ...editorAttrs, class: 'row-value multi', rows: 6, wrap: 'off' });
  const multiBox = h('input', { id: `${id}-multi`, class: 'value-multi', type: 'checkbox' });
  const eol = h(
    'select',
    { id: `${id}-eol`, class: 'value-eol' },
    h('option', { value: 'lf', text: 'LF' }),
    h('option', { value: 'crlf', text: 'CR LF (Windows)' }),
  );
  const eolBox = h('span', { class: 'value-eol-box' }, h('label', { for: `${id}-eol`, text: 'Line breaks' }), eol);
  const file = h('input', { id: `${id}-file`, class: 'value-file', type: 'file' });
  const note = h('p', { class: 'value-note hint', 'aria-live': 'polite' });
  const clearFile = h('button', { type: 'button', class: 'quiet value-clear', text: 'Clear the file' });
  const slot = h('div', { class: 'value-editor' }, single);
  const gen = generatorTool(id, (value, text) => {
    field.set(value);
    say(text);
  });
  const el = h(
    'div',
    { class: 'value-field' },
    slot,
    h(
      'div',
      { class: 'value-tools' },
      h('span', { class: 'check' }, multiBox, h('label', { for: `${id}-multi`, text: 'Multi-line' })),
      eolBox,
      h('span', { class: 'value-file-box' }, h('label', { for: `${id}-file`, text: 'Or load from a file' }), file),
      gen.button,
    ),
    gen.panel,
    note,
  );
  let held = null; // a value kept in memory only: a loaded file's, or one a form cannot hold
  let fileToken = 0; // drops a file read that finished after a wipe or another pick

  const editor = () => (multiBox.checked ? multi : single);
  const say = (text, ...extra) => note.replaceChildren(...(text ? [text] : []), ...extra);
  const syncMode = () => {
    slot.replaceChildren(editor());
    show(eolBox, multiBox.checked);
    for (const c of [single, multi, multiBox, eol]) c.disabled = held !== null;
  };
  const toMulti = (text, breaks) => {
    multi.value = text;
    multiBox.checked = true;
    if (breaks === 'crlf' || breaks === 'lf') eol.value = breaks;
    syncMode();
    multi.focus();
  };
  // The text a paste or a drop would insert, when the event carries it.
  const carried = (ev) => {
    const dt = ev.clipboardData || ev.dataTransfer;
    return dt && typeof dt.getData === 'function' ? dt.getData('text/plain') : '';
  };
  const spliced = (input, text) => {
    const v = input.value;
    const a = Number.isInteger(input.selectionStart) ? input.selectionStart : v.length;
    const b = Number.isInteger(input.selectionEnd) ? input.selectionEnd : a;
    return v.slice(0, a) + text + v.slice(b);
  };
  const onSingleInsert = (ev) => {
    const text = carried(ev);
    const breaks = F.lineBreaks(text);
    if (breaks === 'none') return;
    ev.preventDefault(); // the password field would drop the line breaks
    if (breaks === 'mixed') {
      say('The text mixes kinds of line break, which a form cannot keep: load the value from a file instead.');
      return;
    }
    toMulti(spliced(single, text), breaks);
    say(`The value has line breaks: switched to multi-line, with ${breaks === 'crlf' ? 'CR LF' : 'LF'} line breaks.`);
  };
  const onMultiInsert = (ev) => {
    const text = carried(ev);
    const breaks = F.lineBreaks(text);
    if (breaks === 'none') return;
    const current = F.lineBreaks(multi.value) === 'none' ? null : eol.value;
    if (breaks === 'mixed' || (current && current !== breaks)) {
      // The textarea would turn the pasted line breaks into the chosen kind.
      ev.preventDefault();
      say('The text has other line breaks than the value, which a form cannot keep: load the value from a file instead.');
      return;
    }
    eol.value = breaks;
    say(`Line breaks: ${breaks === 'crlf' ? 'CR LF' : 'LF'}, as in the pasted text.`);
  };
  single.addEventListener('paste', onSingleInsert);
  single.addEventListener('drop', onSingleInsert);
  multi.addEventListener('paste', onMultiInsert);
  multi.addEventListener('drop', onMultiInsert);
  multiBox.addEventListener('change', () => {
    say('');
    if (multiBox.checked) {
      multi.value = single.value;
      single.value = '';
    } else if (F.lineBreaks(multi.value) !== 'none') {
      // Back to one line would drop the line breaks: refused.
      multiBox.checked = true;
      say('The value has line breaks: remove them before switching to a single line.');
      return;
    } else {
      single.value = multi.value;
      multi.value = '';
    }
    syncMode();
    editor().focus();
  });
  const dropFile = () => {
    held = null;
    fileToken++;
    file.value = '';
  };
  clearFile.addEventListener('click', () => {
    dropFile();
    say('');
    syncMode();
    editor().focus();
  });
  file.addEventListener('change', async () => {
    const f = file.files && file.files[0];
    file.value = ''; // the page keeps no reference to the file
    if (!f) return;
    const token = ++fileToken;
    let text;
    try {
      F.checkFileSize(f.size, f.name);
      text = F.fileText(await f.arrayBuffer(), f.name);
    } catch (err) {
      if (token === fileToken) say(F.describeError(err));
      return;
    }
    if (token !== fileToken) return;
    held = text;
    single.value = '';
    multi.value = '';
    syncMode();
    const bytes = new TextEncoder().encode(text).length;
    clearFile.textContent = 'Clear the file';
    say(`The value is the content of the file “${f.name}” (${bytes} bytes), sent exactly as it is. `, clearFile);
  });
  const field = {
    el,
    read: () => (held !== null ? held : multiBox.checked ? F.withLineBreaks(multi.value, eol.value) : single.value),
    /**
     * set puts a value in the field (from a .env block, or generated):
     * single-line, multi-line with its kind of line break, or, when a form
     * cannot hold it (mixed line breaks), in memory. Answers how it is held.
     */
    set: (value) => {
      const v = String(value ?? '');
      dropFile();
      const breaks = F.lineBreaks(v);
      single.value = '';
      multi.value = '';
      if (breaks === 'mixed') {
        held = v;
        multiBox.checked = false;
        syncMode();
        clearFile.textContent = 'Clear this value';
        say('This value mixes kinds of line break: it is kept exactly, in memory, and sent as it is. ', clearFile);
        return 'held';
      }
      multiBox.checked = breaks !== 'none';
      if (breaks === 'none') single.value = v;
      else {
        multi.value = v;
        eol.value = breaks;
      }
      syncMode();
      return breaks === 'none' ? 'single' : 'multi';
    },
    wipe: () => {
      dropFile();
      single.value = '';
      multi.value = '';
      gen.wipe();
      say('');
      syncMode();
    },
  };
  valueFields.set(el, field);
  syncMode();
  return field;
}

// --- dialogs ---

let rowSeq = 0;

/** kvRow is one key/value row; for pairs the value is a valueField. */
export function kvRow(kind, { key = '', value = '' } = {}) {
  const n = ++rowSeq;
  const keyId = `${kind}-key-${n}`;
  const valueId = `${kind}-value-${n}`;
  const keyInput = h('input', { id: keyId, class: 'row-key', type: 'text', autocomplete: 'off', spellcheck: 'false', maxlength: kind === 'pair' ? 128 : 63 });
  keyInput.value = key;
  let valueInput;
  if (kind === 'pair') {
    valueInput = valueField(valueId).el;
  } else {
    valueInput = h('input', { id: valueId, class: 'row-value', type: 'text', autocomplete: 'off', spellcheck: 'false', maxlength: 63 });
    valueInput.value = value; // label values are not secret
  }
  const what = kind === 'pair' ? 'pair' : 'label';
  const remove = h('button', { type: 'button', class: 'quiet row-remove', text: 'Remove', 'aria-label': `Remove this ${what}` });
  // Where this row's errors are said (fielderrors.js), under its fields.
  const errors = h('p', { id: `${kind}-error-${n}`, class: 'row-error field-error' });
  const row = h(
    'div',
    { class: kind === 'pair' ? 'row pair' : 'row' },
    h('label', { for: keyId, class: 'row-key-label', text: kind === 'pair' ? 'Key' : 'Label' }),
    keyInput,
    h('label', { for: valueId, class: 'row-value-label', text: 'Value' }),
    valueInput,
    remove,
    errors,
  );
  remove.addEventListener('click', () => {
    const box = row.parentElement;
    for (const el of row.querySelectorAll('.value-field')) valueFields.get(el)?.wipe();
    row.remove();
    if (box && box.children.length === 0) box.append(kvRow(kind));
    const first = box && box.querySelector('input');
    if (first) first.focus();
  });
  return row;
}

/** writeValue puts a value in a value field (see valueField's set); answers how it is held. */
export function writeValue(el, value) {
  const field = valueFields.get(el);
  if (!field) throw new Error('not a value field');
  return field.set(value);
}

/** readValue is what a value field (or a label's value input) holds. */
export function readValue(el) {
  const field = valueFields.get(el);
  return field ? field.read() : el.value;
}

export function readRows(box) {
  return [...box.querySelectorAll('.row')].map((r) => ({
    key: r.querySelector('.row-key').value,
    value: readValue(r.querySelector('.value-field') || r.querySelector('.row-value')),
  }));
}

/** wipeValues empties every secret value of a dialog: fields, files held, password inputs. */
export function wipeValues(dialog) {
  for (const el of dialog.querySelectorAll('.value-field')) valueFields.get(el)?.wipe();
  for (const i of dialog.querySelectorAll('input[type="password"]')) i.value = '';
  for (const t of dialog.querySelectorAll('textarea')) t.value = '';
}
