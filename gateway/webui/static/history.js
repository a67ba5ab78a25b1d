// history.js: a secret's version history in the details pane: when each
// version was made and which keys it added or removed (GET .../versions
// ?keys=true names the keys of the newest 20 versions, never a value), and
// "Roll back to this version" (POST .../rollback, inside the gateway: an
// editor can undo a bad rotation of values it can never read).

import { $, h } from './dom.js';
import * as F from './forms.js';
import { join } from './roles.js';

/** described: how many of the newest versions the gateway names the keys of (api.MaxVersionKeys). */
export const described = 20;

/**
 * versionChanges compares each version's keys with the version listed
 * before it. versions are the API's, oldest first; the answer is newest
 * first: {version, created_at, keys (null when not known), base (the
 * version compared with), added, removed, kind}, kind being
 *   "created"  version 1: every key is new;
 *   "changed"  keys were added or removed;
 *   "same"     the same keys (values or labels may differ);
 *   "oldest"   the oldest version kept (older ones were pruned);
 *   "base-unknown" the keys of the version before are not known;
 *   "unknown"  this version's keys are not known.
 */
export function versionChanges(versions) {
  const list = [...(versions || [])];
  return list
    .map((v, i) => {
      const prev = i > 0 ? list[i - 1] : null;
      const keys = Array.isArray(v.keys) ? [...v.keys].sort() : null;
      const out = { version: v.version, created_at: v.created_at, keys, base: prev ? prev.version : null, added: [], removed: [], kind: 'unknown' };
      if (!keys) return out;
      if (!prev) {
        out.kind = v.version === 1 ? 'created' : 'oldest';
        if (out.kind === 'created') out.added = keys;
        return out;
      }
      if (!Array.isArray(prev.keys)) {
        out.kind = 'base-unknown';
        return out;
      }
      out.added = keys.filter((k) => !prev.keys.includes(k));
      out.removed = prev.keys.filter((k) => !keys.includes(k)).sort();
      out.kind = out.added.length > 0 || out.removed.length > 0 ? 'changed' : 'same';
      return out;
    })
    .reverse();
}

const codes = (keys) => {
  const out = [];
  keys.forEach((k, i) => {
    if (i > 0) out.push(i === keys.length - 1 ? ' and ' : ', ');
    out.push(h('code', { text: k }));
  });
  return out;
};

/** changeLine is one version's change, as a paragraph (key names only). */
export function changeLine(c, newestIndex) {
  const p = (cls, ...parts) => h('p', { class: `version-changes ${cls}` }, ...parts);
  switch (c.kind) {
    case 'created':
      return p('created', 'Created with ', ...codes(c.keys), '.');
    case 'oldest':
      return p('oldest', 'Oldest version kept, with ', ...codes(c.keys), '.');
    case 'same':
      return p('same', `Same keys as version ${c.base}: values or labels changed.`);
    case 'base-unknown':
      return p('base-unknown', 'Keys: ', ...codes(c.keys), '.');
    case 'changed': {
      const noun = (keys) => (keys.length === 1 ? 'key' : 'keys');
      const parts = [];
      if (c.added.length) parts.push(h('span', { class: 'added' }, `Added ${noun(c.added)} `, ...codes(c.added)));
      if (c.removed.length) parts.push(h('span', { class: 'removed' }, `${c.added.length ? 'removed' : 'Removed'} ${noun(c.removed)} `, ...codes(c.removed)));
      return p('changed', ...(parts.length === 2 ? [parts[0], '; ', parts[1]] : parts), '.');
    }
    default:
      return p(
        'unknown',
        newestIndex < described ? 'Keys unknown: the backend no longer serves this version.' : `Keys not listed: only the newest ${described} versions are.`,
      );
  }
}

/**
 * historyItems are the <li> of the versions list, newest first. onRollback
 * (c), when given, adds "Roll back to this version" to every version but
 * the latest.
 */
export function historyItems(meta, versions, { onRollback } = {}) {
  return versionChanges(versions).map((c, i) => {
    const latest = c.version === meta.version;
    const head = h(
      'div',
      { class: 'version-head' },
      h('span', { class: 'version-num', text: `Version ${c.version}` }),
      latest ? h('span', { class: 'version-current', text: 'current' }) : null,
      h('time', { datetime: c.created_at || null, text: F.formatTime(c.created_at) }),
    );
    const li = h('li', { class: 'version', 'data-version': c.version }, head, changeLine(c, i));
    if (onRollback && !latest) {
      const b = h('button', { type: 'button', class: 'quiet rollback', text: 'Roll back to this version', 'aria-label': `Roll back “${meta.name}” to version ${c.version}` });
      b.addEventListener('click', () => onRollback(c));
      li.append(b);
    }
    return li;
  });
}

/**
 * rollbackText is the confirmation of a rollback: what it writes, and
 * that it is refused if the secret changed after the version seen.
 */
export function rollbackText(meta, c) {
  const keys = c.keys ? ` (keys ${join(c.keys)})` : '';
  return (
    `Version ${c.version}’s values${keys} will be saved again as a new version ${meta.version + 1} of “${meta.name}”; ` +
    `the labels stay as they are now. The values never reach this page: the gateway copies them. ` +
    `Refused if someone changes “${meta.name}” after version ${meta.version} meanwhile.`
  );
}

/**
 * setupRollback wires the rollback dialog. forms: formkit's createForms;
 * app: state, notify, refreshDetails. Answers open(c), for historyItems.
 */
export function setupRollback(app, forms) {
  let target = null; // {meta: what the user saw, change}
  forms.submitter(
    'form-rollback',
    'rollback-error',
    () => ({ ...target }),
    async ({ meta, change }) => {
      let m;
      try {
        m = await app.state.client.rollback(meta.project, meta.name, { version: change.version }, { ifMatchVersion: meta.version });
      } catch (err) {
        if (err.code === 'version_mismatch') {
          err.message = `Someone changed “${meta.name}” after version ${meta.version}, the one you saw: nothing was rolled back. Close this, reload the details and look at the history again`;
        }
        throw err;
      }
      app.notify(`Rolled back “${meta.name}” to version ${change.version}: now version ${m.version}.`);
      await app.refreshDetails(m);
      return m;
    },
  );
  return function open(change) {
    const meta = app.state.selected;
    if (!meta) return;
    target = { meta: { ...meta }, change };
    $('dlg-rollback-title').textContent = `Roll back “${meta.name}” to version ${change.version}?`;
    $('rollback-text').textContent = rollbackText(meta, change);
    $('rollback-confirm').textContent = `Roll back to version ${change.version}`;
    forms.open('dlg-rollback');
  };
}
