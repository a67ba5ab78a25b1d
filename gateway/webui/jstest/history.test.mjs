// Unit tests of static/history.js (which keys each version added or
// removed) and static/roles.js (what the page says a role may do).
import test from 'node:test';
import assert from 'node:assert/strict';

import { Document } from './fakedom.mjs';
import { changeLine, historyItems, rollbackText, versionChanges } from '../static/history.js';
import { permissions } from '../static/forms.js';
import { detailsHint, emptyState, join, roleSummary } from '../static/roles.js';

const v = (version, keys) => ({ version, created_at: `2025-06-01T10:00:0${version % 10}Z`, ...(keys ? { keys } : {}) });
const brief = (c) => [c.version, c.kind, c.base, c.added.join(' '), c.removed.join(' ')];

test('versionChanges: what each version added or removed, newest first', () => {
  const cases = [
    ['one version', [v(1, ['a', 'b'])], [[1, 'created', null, 'a b', '']]],
    [
      'a rotation, a new key, a removed key, both',
      [v(1, ['password', 'user']), v(2, ['password', 'user']), v(3, ['password', 'token', 'user']), v(4, ['password', 'token']), v(5, ['host', 'token'])],
      [
        [5, 'changed', 4, 'host', 'password'],
        [4, 'changed', 3, '', 'user'],
        [3, 'changed', 2, 'token', ''],
        [2, 'same', 1, '', ''],
        [1, 'created', null, 'password user', ''],
      ],
    ],
    [
      'older versions without keys (beyond the newest 20, or not served)',
      [v(1), v(2, ['a']), v(3, ['a', 'b']), v(4)],
      [
        [4, 'unknown', 3, '', ''],
        [3, 'changed', 2, 'b', ''],
        [2, 'base-unknown', 1, '', ''],
        [1, 'unknown', null, '', ''],
      ],
    ],
    ['the oldest versions pruned', [v(7, ['a']), v(8, ['a', 'c'])], [[8, 'changed', 7, 'c', ''], [7, 'oldest', null, '', '']]],
    ['keys in any order', [v(1, ['b', 'a']), v(2, ['a', 'b'])], [[2, 'same', 1, '', ''], [1, 'created', null, 'a b', '']]],
    ['no versions', [], []],
  ];
  for (const [what, versions, want] of cases) assert.deepEqual(versionChanges(versions).map(brief), want, what);
});

test('the history says it in words, with rollback on every version but the current one', () => {
  globalThis.document = new Document('<html><body></body></html>');
  const text = (c, i = 0) => changeLine(c, i).textContent;
  const [c5, c4, c3, c2, c1] = versionChanges([v(1, ['password', 'user']), v(2, ['password', 'user']), v(3, ['password', 'token', 'user']), v(4, ['password', 'token']), v(5, ['host', 'token'])]);
  assert.equal(text(c1), 'Created with password and user.');
  assert.equal(text(c2), 'Same keys as version 1: values or labels changed.');
  assert.equal(text(c3), 'Added key token.');
  assert.equal(text(c4), 'Removed key user.');
  assert.equal(text(c5), 'Added key host; removed key password.');
  const [u] = versionChanges([v(1)]);
  assert.equal(text(u, 3), 'Keys unknown: the backend no longer serves this version.');
  assert.equal(text(u, 20), 'Keys not listed: only the newest 20 versions are.');

  const meta = { project: 'p', name: 'db', version: 5 };
  const picked = [];
  const items = historyItems(meta, [v(1, ['a']), v(5, ['a'])], { onRollback: (c) => picked.push(c.version) });
  assert.deepEqual(items.map((li) => li.getAttribute('data-version')), ['5', '1']);
  assert.equal(items[0].querySelector('button'), null, 'the current version has no rollback');
  assert.match(items[0].textContent, /^Version 5current/);
  items[1].querySelector('button').click();
  assert.deepEqual(picked, [1]);
  assert.equal(items[1].querySelector('button').getAttribute('aria-label'), 'Roll back “db” to version 1');
  assert.ok(historyItems(meta, [v(1, ['a']), v(5, ['a'])]).every((li) => !li.querySelector('button')), 'no rollback without the permission');
  assert.equal(
    rollbackText(meta, { version: 3, keys: ['a', 'b'] }),
    'Version 3’s values (keys a and b) will be saved again as a new version 6 of “db”; the labels stay as they are now. ' +
      'The values never reach this page: the gateway copies them. Refused if someone changes “db” after version 5 meanwhile.',
  );
});

test('roles: a reader is told what it may do, and promised no button it lacks', () => {
  const reader = permissions(['secrets.list', 'secrets.read']);
  const editor = permissions(['secrets.list', 'secrets.create', 'secrets.update', 'secrets.delete']);
  const admin = permissions(['secrets.list', 'secrets.read', 'secrets.create', 'secrets.update', 'secrets.delete', 'project.migrate']);
  assert.equal(
    roleSummary(reader, { project: 'payments' }),
    'In “payments” you may list secrets and their versions. You cannot add or change secrets here: ask someone whose role may. Values are never shown in this page.',
  );
  assert.equal(
    roleSummary(reader, { project: 'payments', copyTargets: ['billing'] }),
    'In “payments” you may list secrets and their versions and copy them to another project. You cannot add or change secrets here: ask someone whose role may. Values are never shown in this page.',
  );
  assert.equal(
    roleSummary(editor, { project: 'p', copyTargets: ['p', 'q'] }),
    'In “p” you may list secrets and their versions, add secrets, change them (replace values, set or remove a key, edit labels, roll back), and delete them. Values are never shown in this page.',
    'an editor cannot read, so no copy',
  );
  assert.match(roleSummary(admin, { project: 'p', copyTargets: ['p', 'q'] }), /, delete them, and copy them to another project\./);
  assert.match(roleSummary(admin, { project: 'p', copyTargets: ['p'] }), /, delete them, and copy them under another name\./, 'the only project');
  assert.equal(roleSummary(permissions([]), { project: 'p' }), 'In “p” this token may do nothing the web UI offers.');
  for (const p of [reader]) {
    const hint = detailsHint(p);
    assert.ok(!/replace|remove|roll back/.test(hint), `no promise of write buttons: ${hint}`);
    assert.match(hint, /cannot change them/);
  }
  assert.match(detailsHint(editor), /you may replace them, set or remove one key, or roll back/);
  assert.match(detailsHint(reader, { canCopy: true }), /look at the keys and versions, and copy the secret inside the gateway\./);
  assert.deepEqual(emptyState(editor, { project: 'payments' }), {
    title: 'No secrets in “payments” yet.',
    text: 'Add one with “+ Add Secret” above, or from a terminal:',
    command: 'secretgate secret create NAME key=value --project payments',
  });
  assert.match(emptyState(reader, { project: 'payments' }).text, /^Your role here cannot add secrets/);
  assert.equal(emptyState(reader, { project: 'payments' }).command, 'secretgate secret create NAME key=value --project payments');
  assert.deepEqual(emptyState(editor, { project: 'payments', prefix: 'zz' }), {
    title: 'No secret name in “payments” starts with “zz”.',
    text: 'Clear the filter to see every secret.',
    command: '',
  });
  assert.equal(join(['a', 'b', 'c']), 'a, b, and c');
  assert.equal(join(['a', 'b']), 'a and b');
});
