// envpaste.js: filling the key/value rows of a dialog from a pasted .env
// block (dotenv.js), either in its own masked text area or by pasting the
// block into any key field. The block is all or nothing: when a line is
// wrong, its number and what is wrong are listed and no row changes. The
// values go into the rows' value fields (memory), never into the markup.

import { h, show } from './dom.js';
import { looksLikeDotenv, parseDotenv } from './dotenv.js';
import { kvRow, readRows, writeValue } from './values.js';

/**
 * envPaste adds "Paste a .env block" to a dialog: mount is where its
 * button and panel go, box the rows it fills, id a prefix for element ids.
 * Answers {fill(text), wipe()}.
 */
export function envPaste({ mount, box, id }) {
  const open = h('button', { type: 'button', class: 'quiet env-open', 'aria-expanded': 'false', 'aria-controls': `${id}-panel`, text: 'Paste a .env block…' });
  const text = h('textarea', { id: `${id}-text`, class: 'env-text', rows: 6, wrap: 'off', spellcheck: 'false', autocomplete: 'off', autocapitalize: 'off' });
  const errors = h('ul', { id: `${id}-text-error`, class: 'field-error env-errors' });
  const fillButton = h('button', { type: 'button', class: 'env-fill', text: 'Fill the rows' });
  const cancel = h('button', { type: 'button', class: 'quiet env-cancel', text: 'Cancel' });
  const note = h('p', { class: 'hint env-note', 'aria-live': 'polite' });
  const panel = h(
    'div',
    { id: `${id}-panel`, class: 'env-panel' },
    h('label', { for: text.id, text: 'KEY=VALUE lines, as in a .env file' }),
    text,
    h(
      'p',
      { class: 'hint' },
      'Comments (#), blank lines, “export” and quoted values (also over several lines) are understood. What you paste stays hidden, fills the rows below, and is then forgotten. From a terminal: ',
      h('code', { text: 'secretgate secret create NAME --from-env-file .env' }),
    ),
    errors,
    h('div', { class: 'buttons' }, fillButton, cancel),
  );
  mount.replaceChildren(open, panel, note);

  const setOpen = (yes) => {
    show(panel, yes);
    open.setAttribute('aria-expanded', String(yes));
  };
  const clearErrors = () => {
    errors.replaceChildren();
    text.removeAttribute('aria-invalid');
  };
  const wipe = () => {
    text.value = '';
    clearErrors();
    note.textContent = '';
    setOpen(false);
  };
  setOpen(false);

  /** fill puts the block's pairs in the rows; answers false (and lists the errors) when a line is wrong. */
  function fill(block) {
    clearErrors();
    note.textContent = '';
    const { pairs, errors: bad } = parseDotenv(block);
    if (bad.length === 0 && pairs.length === 0) bad.push({ line: 0, message: 'No KEY=value line was found.' });
    if (bad.length > 0) {
      errors.replaceChildren(...bad.map((e) => h('li', { text: e.message })));
      text.setAttribute('aria-invalid', 'true');
      text.setAttribute('aria-describedby', errors.id);
      return false;
    }
    let multi = 0;
    for (const p of pairs) {
      const rows = [...box.querySelectorAll('.row')];
      const current = readRows(box);
      let i = current.findIndex((r) => r.key.trim() === p.key);
      if (i < 0) i = current.findIndex((r) => r.key.trim() === '' && r.value === '');
      let row = rows[i];
      if (!row) {
        row = kvRow('pair');
        box.append(row);
      }
      row.querySelector('.row-key').value = p.key;
      if (writeValue(row.querySelector('.value-field'), p.value) !== 'single') multi++;
    }
    const keys = pairs.map((p) => p.key);
    note.textContent =
      `Filled ${keys.length === 1 ? '1 key' : `${keys.length} keys`} from the .env block: ${keys.join(', ')}` +
      (multi ? ` (${multi} multi-line).` : '.');
    return true;
  }

  open.addEventListener('click', () => {
    const now = panel.hidden;
    setOpen(now);
    if (now) text.focus();
  });
  cancel.addEventListener('click', () => {
    wipe();
    open.focus();
  });
  fillButton.addEventListener('click', () => {
    if (fill(text.value)) {
      text.value = '';
      setOpen(false);
      const first = box.querySelector('.row-key');
      if (first) first.focus();
    } else {
      text.focus();
    }
  });
  // A block pasted into a key field fills the rows instead (a key never holds "=").
  box.addEventListener('paste', (ev) => {
    const target = ev.target;
    if (!target || !target.classList || !target.classList.contains('row-key')) return;
    const dt = ev.clipboardData;
    const pasted = dt && typeof dt.getData === 'function' ? dt.getData('text/plain') : '';
    if (!looksLikeDotenv(pasted)) return;
    ev.preventDefault();
    if (!fill(pasted)) {
      // Shown where it can be fixed and filled again; hidden like every value.
      setOpen(true);
      text.value = pasted;
      text.focus();
    }
  });
  return { fill, wipe };
}
