// validate.js: what a form can check before anything is sent, in plain
// words, and the gateway's invalid_argument answers turned into the same
// shape, so that every error shows next to the field it is about. No DOM.
//
// An error is {field, row?, key?, part?, message}: field is the API's name
// of the member ("name", "data", "labels", "set", "as", "to_project",
// "unset", "version"); row (the row's index in the form) or key (a key
// name) says which row of pairs or labels; part is "key" or "value".
// Messages quote names and keys (never secret), never a value.

import { APIError, limits } from './api.js';

/** FieldErrors is a form refused, by these checks or by the gateway. */
export class FieldErrors extends APIError {
  constructor(errors, { requestId = '', status = 0 } = {}) {
    super({ status, code: 'invalid_argument', message: errors.map((e) => e.message).join(' '), requestId });
    this.name = 'FieldErrors';
    this.errors = errors;
  }
}

const RULE = Object.freeze({
  name: 'use letters, digits, “_” or “-”',
  key: 'use letters, digits, “_”, “.” or “-”',
  label: 'use lower-case letters, digits, “_” or “-”',
});

/** what names a character in a message: “/”, or spaces, or line breaks. */
function what(c) {
  if (c === ' ') return 'spaces';
  if (c === '\t') return 'tabs';
  if (c === '\n' || c === '\r') return 'line breaks';
  if (/\p{C}/u.test(c)) return 'control characters';
  return `“${c}”`;
}

const firstBad = (s, ok) => [...s].find((c) => !ok.test(c));

/** broken: a lone UTF-16 surrogate, which no text encoding can send (the gateway refuses it). */
const broken = (s) => /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
const BROKEN = 'This value holds a broken character (half of a UTF-16 pair): enter it again.';

/**
 * nameProblem says what is wrong with a secret name, or "" (noun: "A name",
 * "The new name"). The rule is sdk/charset.go's.
 */
export function nameProblem(raw, noun = 'A name') {
  const s = String(raw ?? '').trim();
  if (s === '') return 'Enter a name.';
  const bad = firstBad(s, /[A-Za-z0-9_-]/);
  if (bad !== undefined) return `${noun} cannot contain ${what(bad)}: ${RULE.name}.`;
  if (!/^[A-Za-z0-9]/.test(s)) return `${noun} must start with a letter or a digit.`;
  if (s.length > 128) return `${noun} has at most 128 characters (this one has ${s.length}).`;
  return '';
}

/** keyProblem says what is wrong with a key of a secret, or "". */
export function keyProblem(raw) {
  const s = String(raw ?? '').trim();
  if (s === '') return 'Enter a key.';
  const bad = firstBad(s, /[A-Za-z0-9_.-]/);
  if (bad !== undefined) return `A key cannot contain ${what(bad)}: ${RULE.key}.`;
  if (s.length > 128) return `A key has at most 128 characters (this one has ${s.length}).`;
  return '';
}

/** prefixProblem says what is wrong with the list's name filter ("" is no filter). */
export function prefixProblem(raw) {
  const s = String(raw ?? '').trim();
  if (s === '') return '';
  const bad = firstBad(s, /[A-Za-z0-9_-]/);
  if (bad !== undefined) return `Names never contain ${what(bad)}: filter with letters, digits, “_” or “-”.`;
  if (s.length > 128) return `A name has at most 128 characters (this filter has ${s.length}).`;
  return '';
}

/** labelKeyProblem says what is wrong with a label's name, or "". */
export function labelKeyProblem(raw) {
  const s = String(raw ?? '').trim();
  if (s === '') return 'Enter a label name.';
  const lower = s.toLowerCase();
  if (s !== lower && labelKeyProblem(lower) === '') return `Label names are lower case: “${lower}”, not “${s}”.`;
  const bad = firstBad(s, /[a-z0-9_-]/);
  if (bad !== undefined) return `A label name cannot contain ${/[A-Z]/.test(bad) ? 'capital letters' : what(bad)}: ${RULE.label}.`;
  if (!/^[a-z]/.test(s)) return 'A label name must start with a letter (a-z).';
  if (s.length > 63) return `A label name has at most 63 characters (this one has ${s.length}).`;
  return '';
}

/** labelValueProblem: label values are short plain text, counted in characters. */
export function labelValueProblem(value) {
  const n = [...String(value ?? '')].length;
  return n > limits.maxLabelValueChars ? `A label value has at most ${limits.maxLabelValueChars} characters (this one has ${n}).` : '';
}

/**
 * pairErrors checks rows of key/value pairs [{key, value}]: rows with
 * neither are skipped; a value needs a key, a key a value (unless
 * allowEmpty), keys are valid and given once, and there are 1 to 100.
 * emptyHint ends the message of an empty value: it names the dialog's own
 * way out (its checkbox, as labelled).
 */
export function pairErrors(rows, { allowEmpty = false, emptyHint = 'remove this row, or tick “Allow empty values”' } = {}) {
  const errors = [];
  const seen = new Set();
  const used = [];
  (rows || []).forEach((row, i) => {
    const key = String(row.key ?? '').trim();
    const value = row.value ?? '';
    if (key === '' && value === '') return;
    used.push(i);
    const err = (part, message) => errors.push({ field: 'data', row: i, part, message });
    if (key === '') {
      err('key', 'Enter a key for this value.');
    } else if (keyProblem(key)) {
      err('key', keyProblem(key));
    } else if (seen.has(key)) {
      err('key', `“${key}” is given twice: each key once.`);
    } else {
      seen.add(key);
    }
    if (value === '' && !allowEmpty) err('value', `Enter a value, ${emptyHint}.`);
    else if (broken(value)) err('value', BROKEN);
  });
  if (used.length === 0) errors.push({ field: 'data', row: 0, part: 'key', message: 'Enter at least one key and its value.' });
  if (used.length > limits.maxKeys) {
    errors.push({ field: 'data', row: used[limits.maxKeys], part: 'key', message: `A secret holds at most ${limits.maxKeys} keys (this form has ${used.length}).` });
  }
  return errors;
}

/** labelErrors checks label rows [{key, value}]: empty rows are skipped. */
export function labelErrors(rows) {
  const errors = [];
  const seen = new Set();
  const used = [];
  (rows || []).forEach((row, i) => {
    const key = String(row.key ?? '').trim();
    const value = String(row.value ?? '').trim();
    if (key === '' && value === '') return;
    used.push(i);
    const err = (part, message) => errors.push({ field: 'labels', row: i, part, message });
    if (key === '') err('key', 'Enter a label name for this value.');
    else if (labelKeyProblem(key)) err('key', labelKeyProblem(key));
    else if (seen.has(key)) err('key', `The label “${key}” is given twice: each label once.`);
    else seen.add(key);
    if (labelValueProblem(value)) err('value', labelValueProblem(value));
  });
  if (used.length > limits.maxLabels) {
    errors.push({ field: 'labels', row: used[limits.maxLabels], part: 'key', message: `A secret has at most ${limits.maxLabels} labels (this form has ${used.length}).` });
  }
  return errors;
}

/** setKeyErrors checks "Set one key": its key, and its value unless an empty one is allowed. */
export function setKeyErrors({ key, value, allowEmpty = false }) {
  const errors = [];
  const k = String(key ?? '').trim();
  if (keyProblem(k)) errors.push({ field: 'set', part: 'key', message: keyProblem(k) });
  if ((value ?? '') === '' && !allowEmpty) errors.push({ field: 'set', part: 'value', message: 'Enter a value, or tick “Allow an empty value”.' });
  else if (broken(String(value ?? ''))) errors.push({ field: 'set', part: 'value', message: BROKEN });
  return errors;
}

/** copyErrors checks "Copy": a target project, and a new name that is valid and, within one project, differs. */
export function copyErrors({ fromProject, name, toProject, as }) {
  const errors = [];
  const to = String(toProject ?? '').trim();
  const target = String(as ?? '').trim();
  if (to === '') errors.push({ field: 'to_project', message: 'Pick the project to copy to.' });
  if (target !== '' && nameProblem(target, 'The new name')) {
    errors.push({ field: 'as', message: nameProblem(target, 'The new name') });
  } else if (to === fromProject && target === '') {
    errors.push({ field: 'as', message: `Within project “${to}” the copy needs a new name: enter one.` });
  } else if (to === fromProject && target === name) {
    errors.push({ field: 'as', message: `Within project “${to}” the copy needs a name other than “${name}”.` });
  }
  return errors;
}

/** check throws FieldErrors when errors is not empty. */
export function check(errors) {
  if (errors.length > 0) throw new FieldErrors(errors);
}

// --- the gateway's answers ---

const sentence = (s) => {
  const t = String(s).trim();
  return t === '' ? t : t[0].toUpperCase() + t.slice(1) + (/[.!?]$/.test(t) ? '' : '.');
};

/** plain puts the reason of an invalid_argument answer in plain words. */
function plain(field, reason, key) {
  let m;
  if (/given twice|appears twice/.test(reason)) return key !== undefined ? `“${key}” is given twice: each ${field === 'labels' ? 'label' : 'key'} once.` : sentence(reason);
  if (field === 'labels' && /^key ".*" must match/.test(reason) && key !== undefined) return labelKeyProblem(key) || `A label name: ${RULE.label}.`;
  if (/^key ".*" must be 1-128 characters/.test(reason) && key !== undefined) return keyProblem(key) || `A key: ${RULE.key}.`;
  if ((field === 'name' || field === 'as') && /must be 1-128 characters/.test(reason)) return `${field === 'as' ? 'The new name' : 'A name'}: 1-128 characters, ${RULE.name}, starting with a letter or digit.`;
  if (/must differ from the source name/.test(reason)) return 'Within the same project the copy needs a different name.';
  if ((m = /longer than (\d+) characters/.exec(reason))) return `At most ${m[1]} characters.`;
  if (/must hold at least one key/.test(reason)) return 'Enter at least one key and its value.';
  if ((m = /holds (\d+) keys, at most (\d+)/.exec(reason))) return `A secret holds at most ${m[2]} keys (this one would have ${m[1]}).`;
  if ((m = /holds (\d+) labels, at most (\d+)/.exec(reason))) return `A secret has at most ${m[2]} labels (this one would have ${m[1]}).`;
  if (/valid UTF-8/.test(reason)) return 'This is not valid text (UTF-8).';
  if (/lone UTF-16 surrogate/.test(reason)) return BROKEN;
  if (/every key/.test(reason)) return 'A secret keeps at least one key: to remove the last one, delete the secret.';
  return sentence(reason);
}

/**
 * fromAPI turns an invalid_argument answer ("invalid data: key "host" is
 * given twice") into FieldErrors naming its field (and key), in plain
 * words; anything else gives null. "data.k", "labels.k" and "set.k" are
 * about the value of key k; a quoted key in the reason is about the key.
 */
export function fromAPI(err) {
  if (!err || err.code !== 'invalid_argument') return null;
  if (err instanceof FieldErrors) return err;
  const m = /^invalid ([^:\s]+): ([\s\S]+)$/.exec(err.message || '');
  if (!m) return null;
  let field = m[1];
  const reason = m[2];
  let key;
  let part;
  const dot = field.indexOf('.');
  if (dot > 0 && ['data', 'labels', 'set'].includes(field.slice(0, dot))) {
    key = field.slice(dot + 1);
    field = field.slice(0, dot);
    part = 'value';
  }
  const quoted = /^key ("(?:[^"\\]|\\.)*")/.exec(reason);
  if (quoted && key === undefined) {
    try {
      key = JSON.parse(quoted[1]);
      part = 'key';
    } catch {
      // a key the gateway quoted in a way JSON does not read: the field alone
    }
  }
  const e = { field, message: plain(field, reason, key) };
  if (key !== undefined) e.key = key;
  if (part !== undefined) e.part = part;
  return new FieldErrors([e], { requestId: err.requestId, status: err.status });
}
