// forms.js: the pure part of the UI (no DOM): turning what was typed into
// request bodies, deciding which buttons the granted actions allow, and
// formatting metadata for display. app.js does the DOM around it.

import { invalid, validKey, validPrefix } from './api.js';
import * as V from './validate.js';

/** The actions of GET /v1/projects, as the README's Permissions names them. */
export const Actions = Object.freeze({
  list: 'secrets.list',
  read: 'secrets.read',
  create: 'secrets.create',
  update: 'secrets.update',
  delete: 'secrets.delete',
  migrate: 'project.migrate',
});

/**
 * permissions says what the UI may offer in a project, from the actions
 * granted on all its secrets. A binding narrowed by secret globs may allow
 * more on the secrets it matches; the UI offers only what surely works.
 */
export function permissions(actions) {
  const has = new Set(Array.isArray(actions) ? actions : []);
  return {
    list: has.has(Actions.list),
    create: has.has(Actions.create),
    update: has.has(Actions.update),
    delete: has.has(Actions.delete),
    // Copying out needs secrets.read on the secret or project.migrate.
    copyFrom: has.has(Actions.read) || has.has(Actions.migrate),
    // Copying in needs secrets.create (or project.migrate) on the target;
    // overwriting also secrets.update.
    copyTo: has.has(Actions.create) || has.has(Actions.migrate),
    overwrite: has.has(Actions.migrate) || (has.has(Actions.create) && has.has(Actions.update)),
  };
}

/** copyTargets are the projects a copy may go to. */
export function copyTargets(projects) {
  return (projects || []).filter((p) => permissions(p.actions).copyTo).map((p) => p.name);
}

function isBlank(s) {
  return s === undefined || s === null || String(s) === '';
}

/**
 * pairsToData turns key/value rows [{key, value}] into the `data` of a
 * write. Rows with an empty key and an empty value are ignored; keys are
 * trimmed, values kept byte for byte. It throws FieldErrors (validate.js)
 * naming rows and keys, never values. opts: pairErrors' (allowEmpty, emptyHint).
 */
export function pairsToData(rows, opts = {}) {
  V.check(V.pairErrors(rows, opts));
  return dataOf(rows);
}

function dataOf(rows) {
  const data = {};
  for (const row of rows || []) {
    const key = String(row.key ?? '').trim();
    const value = row.value ?? '';
    if (key === '' && isBlank(value)) continue;
    data[key] = String(value);
  }
  return data;
}

/**
 * rowsToLabels turns label rows [{key, value}] into `labels`. Empty rows
 * are ignored; an empty result is {} (which, on replace, clears labels).
 */
export function rowsToLabels(rows) {
  V.check(V.labelErrors(rows));
  return labelsOf(rows);
}

function labelsOf(rows) {
  const labels = {};
  for (const row of rows || []) {
    const key = String(row.key ?? '').trim();
    const value = String(row.value ?? '').trim();
    if (key === '' && value === '') continue;
    labels[key] = value;
  }
  return labels;
}

/** labelsToRows is the inverse of rowsToLabels, sorted by key. */
export function labelsToRows(labels) {
  return Object.keys(labels || {}).sort().map((key) => ({ key, value: labels[key] }));
}

/**
 * createRequest is the body of "+ Add Secret". Every problem of the form is
 * reported at once (FieldErrors), so that each shows next to its field.
 */
export function createRequest({ name, pairs, labels, allowEmpty = false }) {
  const n = String(name ?? '').trim();
  const problem = V.nameProblem(n);
  V.check([...(problem ? [{ field: 'name', message: problem }] : []), ...V.pairErrors(pairs, { allowEmpty }), ...V.labelErrors(labels)]);
  const body = { name: n, data: dataOf(pairs) };
  const l = labelsOf(labels);
  if (Object.keys(l).length > 0) body.labels = l;
  return body;
}

/** replaceRequest is the body of "Replace values": every pair, and the labels as edited. */
export function replaceRequest({ pairs, labels, allowEmpty = false }) {
  V.check([...V.pairErrors(pairs, { allowEmpty }), ...V.labelErrors(labels)]);
  return { data: dataOf(pairs), labels: labelsOf(labels) };
}

/** labelsRequest: the PATCH body that replaces every label and keeps the values. */
export function labelsRequest({ labels }) {
  return { labels: rowsToLabels(labels) };
}

/** setKeyRequest is the patch of "Set one key". */
export function setKeyRequest({ key, value, allowEmpty = false }) {
  V.check(V.setKeyErrors({ key, value, allowEmpty }));
  return { set: { [String(key).trim()]: String(value ?? '') } };
}

/** removeKeyRequest is the patch of "Remove key"; the last key cannot go. */
export function removeKeyRequest({ key, keys }) {
  if (!validKey(key) || !(keys || []).includes(key)) V.check([{ field: 'unset', message: 'Pick one of the secret’s keys.' }]);
  if ((keys || []).length <= 1) V.check([{ field: 'unset', message: 'This is the only key: delete the secret instead.' }]);
  return { unset: [key] };
}

/** copyRequest is the body of "Copy to another project". */
export function copyRequest({ fromProject, name, toProject, as, overwrite }) {
  V.check(V.copyErrors({ fromProject, name, toProject, as }));
  const to = String(toProject ?? '').trim();
  const target = String(as ?? '').trim();
  const body = { toProject: to };
  if (target !== '' && target !== name) body.as = target;
  if (overwrite) body.overwrite = true;
  return body;
}

// --- multi-line values ---
//
// A browser cannot hold every value in a form control: an <input> drops
// line breaks from what is typed or pasted, and a <textarea> reports every
// line break as "\n" whatever was typed or pasted (CR LF and CR become LF).
// So a multi-line value is entered in a textarea with an explicit choice of
// line break ("lf" or "crlf") that is applied when the value is sent, and a
// value that must be kept exactly as some bytes are (mixed line breaks, a
// byte order mark) is loaded from a file instead.

/** maxFileBytes: a value file larger than the gateway's request limit (1 MiB) cannot be sent. */
export const maxFileBytes = 1 << 20;

/**
 * lineBreaks tells which line breaks text holds: "none", "lf", "crlf", or
 * "mixed" (more than one kind, or a CR alone).
 */
export function lineBreaks(text) {
  const s = String(text ?? '');
  const crlf = (s.match(/\r\n/g) || []).length;
  const cr = (s.match(/\r/g) || []).length;
  const lf = (s.match(/\n/g) || []).length;
  if (cr === 0 && lf === 0) return 'none';
  if (cr === 0) return 'lf';
  if (crlf === cr && crlf === lf) return 'crlf';
  return 'mixed';
}

/**
 * withLineBreaks gives text (as a textarea reports it) every line break as
 * eol says: "lf" ("\n") or "crlf" ("\r\n"). Nothing else changes.
 */
export function withLineBreaks(text, eol) {
  if (eol !== 'lf' && eol !== 'crlf') throw invalid('line breaks', 'must be LF or CR LF');
  const lf = String(text ?? '').replace(/\r\n?/g, '\n');
  return eol === 'crlf' ? lf.replace(/\n/g, '\r\n') : lf;
}

/**
 * fileText is a value file's content, exactly: its bytes must be UTF-8 (the
 * API's values are text), and a byte order mark is kept as a character
 * rather than dropped. Errors name the file, never its content.
 */
export function fileText(bytes, name) {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  checkFileSize(view.byteLength, name);
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(view);
  } catch {
    throw invalid('value', `${fileWhat(name)} is not UTF-8 text, and values are text`);
  }
}

/** checkFileSize refuses, before reading it, a value file too large to send. */
export function checkFileSize(size, name) {
  if (size > maxFileBytes) throw invalid('value', `${fileWhat(name)} is larger than ${maxFileBytes} bytes, the gateway's request limit`);
}

const fileWhat = (name) => `file ${JSON.stringify(String(name ?? ''))}`;

/** prefixFilter checks the list filter ("" = no filter). */
export function prefixFilter(s) {
  const p = String(s ?? '').trim();
  if (p !== '' && !validPrefix(p)) throw invalid('prefix', "must be characters of A-Z, a-z, 0-9, '_' and '-'");
  return p;
}

/** formatLabels: "env=prod, team=pay" (sorted), or "" when none. */
export function formatLabels(labels) {
  return labelsToRows(labels).map(({ key, value }) => `${key}=${value}`).join(', ');
}

/** formatTime: a readable UTC time of an RFC 3339 string ("" stays ""). */
export function formatTime(s) {
  if (!s) return '';
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return String(s);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z').replace(/Z$/, ' UTC');
}

/** describeError: the one line the status area shows for an error. */
export function describeError(err) {
  if (!err) return '';
  const msg = err.message || String(err);
  const code = err.code && err.code !== 'unknown' ? ` (${err.code})` : '';
  const rid = err.requestId ? ` — request id ${err.requestId}` : '';
  return `${msg}${code}${rid}`;
}

/** upsertSorted puts a secret's metadata in a list sorted by name. */
export function upsertSorted(list, meta) {
  const out = list.filter((m) => m.name !== meta.name);
  const i = out.findIndex((m) => m.name > meta.name);
  if (i < 0) out.push(meta);
  else out.splice(i, 0, meta);
  return out;
}
