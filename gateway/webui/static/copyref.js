// copyref.js: "Copy reference" on each key of the details pane. A reference
// (sg://PROJECT/SECRET/KEY, docs/api.md "Resolving references") names a
// key and never holds its value, so it is safe to put on the clipboard and
// into config files, for `secretgate run` and `inject` to resolve.

import { invalid, validKey, validName, validProject } from './api.js';
import { h } from './dom.js';
import { later } from './events.js';

/** confirmFor: how long the button says "Copied". */
const confirmFor = 2000;

/** referenceOf is the one spelling of a key's reference (names never hold '/', so nothing needs escaping). */
export function referenceOf(project, name, key) {
  if (!validProject(project)) throw invalid('project', 'is not a project name');
  if (!validName(name)) throw invalid('name', 'is not a secret name');
  if (!validKey(key)) throw invalid('key', 'is not a key');
  return `sg://${project}/${name}/${key}`;
}

/**
 * keyItem is one key of the details pane: its name and its "Copy
 * reference" button. notify(text) reports the outcome in the page's status
 * line (an aria-live region), besides the button's own confirmation.
 */
export function keyItem(project, name, key, notify) {
  const ref = referenceOf(project, name, key);
  const button = h('button', { type: 'button', class: 'quiet copy-ref', text: 'Copy reference', title: ref, 'aria-label': `Copy reference ${ref}` });
  const item = h('li', {}, h('code', { text: key }), button);
  button.addEventListener('click', () => copyReference(item, button, ref, notify));
  return item;
}

/**
 * copyReference puts ref on the clipboard. Where the page has no clipboard
 * access (navigator.clipboard exists in secure contexts only: HTTPS or
 * localhost, not plain HTTP to another host) or the browser refuses it, the
 * reference is shown selected in a read-only field, to copy by hand.
 */
export async function copyReference(item, button, ref, notify) {
  const clipboard = globalThis.navigator && globalThis.navigator.clipboard;
  if (clipboard && typeof clipboard.writeText === 'function') {
    try {
      await clipboard.writeText(ref);
      dropFallback(item);
      button.textContent = 'Copied ✓';
      button.classList.add('copied');
      later(() => {
        button.textContent = 'Copy reference';
        button.classList.remove('copied');
      }, confirmFor);
      notify(`Copied the reference ${ref} to the clipboard.`);
      return true;
    } catch {
      // Refused (no permission, or the page lost focus): copy by hand below.
    }
  }
  showFallback(item, ref);
  notify(`The clipboard is not available to this page: the reference ${ref} is selected, press Ctrl+C (⌘C on a Mac) to copy it.`);
  return false;
}

function dropFallback(item) {
  for (const el of item.querySelectorAll('.ref-fallback')) el.remove();
}

function showFallback(item, ref) {
  dropFallback(item);
  const input = h('input', { type: 'text', class: 'ref-input', readonly: true, spellcheck: 'false', autocomplete: 'off', 'aria-label': 'Reference to copy', size: Math.min(ref.length, 60) });
  input.value = ref;
  const box = h('span', { class: 'ref-fallback' }, input, h('span', { class: 'hint', text: 'Press Ctrl+C (⌘C) to copy' }));
  item.append(box);
  input.addEventListener('focus', () => input.select());
  input.focus();
  input.select();
}
