// generator.js: the "Generate" button of a value field: a random value of a
// chosen length and alphabet (random.js), put straight into the field. The
// value is never shown and never written into the page's markup: it goes
// into the field's memory, as a typed value would.

import { h, show } from './dom.js';
import { alphabets, defaultLength, entropyBits, generate, maxLength, minLength } from './random.js';

/**
 * generatorTool makes the button and its panel for the value field id.
 * onValue(value, text) receives a generated value and a sentence saying
 * what was generated (no value in it). wipe() closes the panel.
 */
export function generatorTool(id, onValue) {
  const button = h('button', { type: 'button', class: 'quiet gen-open', 'aria-expanded': 'false', 'aria-controls': `${id}-gen`, text: 'Generate…' });
  const length = h('input', { id: `${id}-gen-length`, class: 'gen-length', type: 'number', inputmode: 'numeric', min: minLength, max: maxLength, step: 1, value: defaultLength });
  const alphabet = h(
    'select',
    { id: `${id}-gen-alphabet`, class: 'gen-alphabet' },
    ...Object.entries(alphabets).map(([k, a]) => h('option', { value: k, text: a.label })),
  );
  const go = h('button', { type: 'button', class: 'gen-go', text: 'Generate value' });
  const error = h('p', { id: `${id}-gen-length-error`, class: 'field-error gen-error' });
  const panel = h(
    'div',
    { id: `${id}-gen`, class: 'gen-panel', role: 'group', 'aria-label': 'Generate a random value' },
    h('span', { class: 'gen-field' }, h('label', { for: length.id, text: 'Length' }), length),
    h('span', { class: 'gen-field' }, h('label', { for: alphabet.id, text: 'Characters' }), alphabet),
    go,
    error,
  );
  const open = (yes) => {
    show(panel, yes);
    button.setAttribute('aria-expanded', String(yes));
  };
  open(false);
  button.addEventListener('click', () => {
    const now = panel.hidden;
    open(now);
    if (now) length.focus();
  });
  go.addEventListener('click', () => {
    error.textContent = '';
    length.removeAttribute('aria-invalid');
    const raw = String(length.value).trim();
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n < minLength || n > maxLength) {
      error.textContent = `Enter a length from ${minLength} to ${maxLength}.`;
      length.setAttribute('aria-invalid', 'true');
      length.setAttribute('aria-describedby', error.id);
      length.focus();
      return;
    }
    const a = alphabets[alphabet.value];
    onValue(
      generate(n, alphabet.value),
      `Generated a random value: ${n} characters (${a.short}), about ${entropyBits(n, a.chars)} bits. It stays hidden and is sent when you save.`,
    );
    open(false);
  });
  return {
    button,
    panel,
    wipe: () => {
      open(false);
      error.textContent = '';
    },
  };
}
