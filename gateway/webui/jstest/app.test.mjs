// Tests of static/app.js on a minimal fake DOM (fakedom.mjs) against an
// in-memory gateway (fakegateway.mjs): sign in/out, the list and paging,
// every dialog, the permissions, and that no value ever reaches the page.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';

import { Document, Storage, dump, event } from './fakedom.mjs';
import { FakeGateway } from './fakegateway.mjs';

const indexHTML = await readFile(new URL('../static/index.html', import.meta.url), 'utf8');
const CANARIES = ['CANARY-user-7d1f', 'CANARY-pass-93ab', 'CANARY-token-51c0', 'CANARY-replaced-e2aa'];

let boots = 0;

const settle = async () => {
  for (let i = 0; i < 30; i++) await new Promise((r) => setImmediate(r));
};

/** boot loads a fresh copy of app.js on a fresh document. */
async function boot(gw, session = new Storage()) {
  const doc = new Document(indexHTML);
  globalThis.document = doc;
  // No localStorage on this window: touching it would throw.
  globalThis.window = { sessionStorage: session };
  globalThis.fetch = gw.fetch;
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
  return ui;
}

function gateway() {
  const gw = new FakeGateway({
    'tok-admin': { payments: 'admin', billing: 'admin' },
    'tok-editor': { payments: 'editor', billing: 'editor' },
    'tok-reader': { payments: 'reader' },
    'tok-mixed': { payments: 'reader', billing: 'editor' },
  });
  gw.put('payments', 'stripe', { api_key: 'x' }, { team: 'pay' });
  return gw;
}

function assertNoValues(ui, gw) {
  const text = dump(ui.doc);
  for (const c of CANARIES) assert.ok(!text.includes(c), 'a value is in the page');
  for (const r of gw.requests) {
    assert.ok(!(r.method === 'GET' && /^\/v1\/projects\/[^/]+\/secrets\/[^/]+$/.test(r.path)), `the UI read values: ${r.path}`);
  }
  for (const [k] of ui.session.map) assert.ok(k === 'secretgate.token' || k === 'secretgate.project', `session storage holds ${k}`);
}

test('sign in, list, add, details, replace, set, remove, delete, sign out (editor)', async () => {
  const gw = gateway();
  const ui = await boot(gw);
  assert.ok(ui.visible('sign-in') && !ui.visible('workspace'), 'starts at sign in');
  assert.equal(gw.requests.length, 0, 'no request without a token');

  // Sign in: the token goes to sessionStorage and leaves the input.
  await ui.signIn('tok-editor');
  assert.equal(ui.session.getItem('secretgate.token'), 'tok-editor');
  assert.equal(ui.$('token').value, '');
  assert.equal(ui.$('who').textContent, 'Signed in as editor');
  assert.ok(ui.visible('workspace') && ui.visible('session') && !ui.visible('sign-in'));
  assert.deepEqual(ui.$('project').children.map((o) => o.textContent), ['billing', 'payments']);
  assert.equal(ui.$('project').value, 'billing', 'the first project');
  for (const r of gw.requests) {
    assert.equal(r.headers.authorization, 'Bearer tok-editor');
    assert.ok(!r.path.includes('tok-') && !Object.values(r.query).some((v) => v.includes('tok-')), 'no token in a URL');
  }
  ui.$('project').value = 'payments';
  ui.$('project').dispatchEvent(event('change'));
  await settle();
  assert.equal(ui.session.getItem('secretgate.project'), 'payments');
  assert.deepEqual(ui.rows(), [['stripe', 'api_key', '1', 'team=pay', '2025-06-01 10:00:01 UTC']]);
  assert.ok(ui.visible('add-secret'), 'editors may create');

  // + Add secret with two pairs and a label.
  await ui.click('add-secret');
  assert.ok(ui.$('dlg-add').open);
  ui.type('add-name', 'db');
  let rows = ui.$('add-pairs').querySelectorAll('.row');
  assert.equal(rows.length, 1);
  const valueInput = rows[0].querySelector('.row-value');
  assert.equal(valueInput.getAttribute('type'), 'password');
  assert.equal(valueInput.getAttribute('autocomplete'), 'off');
  const label = ui.$('add-pairs').querySelectorAll('label').find((l) => l.getAttribute('for') === valueInput.id);
  assert.ok(label, 'the value input has a label');
  rows[0].querySelector('.row-key').value = 'user';
  valueInput.value = CANARIES[0];
  await ui.click('add-pair');
  rows = ui.$('add-pairs').querySelectorAll('.row');
  assert.equal(rows.length, 2);
  rows[1].querySelector('.row-key').value = 'password';
  const labelRow = ui.$('add-labels').querySelector('.row');
  labelRow.querySelector('.row-key').value = 'env';
  labelRow.querySelector('.row-value').value = 'dev';

  // An empty value is refused unless allowed; nothing is sent, nothing is wiped.
  const before = gw.requests.length;
  await ui.submit('form-add');
  assert.match(ui.$('add-error').textContent, /“password” has no value/);
  assert.equal(gw.requests.length, before);
  assert.equal(valueInput.value, CANARIES[0], 'a refused form keeps what was typed');

  rows[1].querySelector('.row-value').value = CANARIES[1];
  await ui.submit('form-add');
  const post = gw.requests.find((r) => r.method === 'POST');
  assert.deepEqual(post.body, { name: 'db', data: { user: CANARIES[0], password: CANARIES[1] }, labels: { env: 'dev' } });
  assert.ok(!ui.$('dlg-add').open, 'the dialog closed');
  assert.ok(ui.passwords().every((v) => v === ''), 'value inputs are empty');
  assert.match(ui.$('status').textContent, /Created secret “db” \(version 1\)/);
  assert.deepEqual(ui.rows().map((r) => r[0]), ['db', 'stripe']);

  // Details: metadata + versions, buttons by permission.
  assert.ok(ui.visible('details'));
  assert.equal(ui.$('details-title').textContent, 'db');
  assert.match(ui.$('details-meta').textContent, /password/);
  assert.equal(ui.$('versions-body').children.length, 1);
  assert.ok(ui.visible('act-replace') && ui.visible('act-set') && ui.visible('act-remove') && ui.visible('act-delete'));
  assert.ok(!ui.visible('act-copy'), 'an editor cannot read, so cannot copy');
  assert.equal(ui.$('act-remove').disabled, false);
  assertNoValues(ui, gw);

  // Replace values: prefilled keys, empty values, If-Match of the metadata.
  await ui.click('act-replace');
  assert.ok(ui.$('dlg-replace').open);
  rows = ui.$('replace-pairs').querySelectorAll('.row');
  assert.deepEqual(rows.map((r) => r.querySelector('.row-key').value), ['password', 'user']);
  assert.deepEqual(rows.map((r) => r.querySelector('.row-value').value), ['', '']);
  assert.deepEqual(ui.$('replace-labels').querySelectorAll('.row').map((r) => [r.querySelector('.row-key').value, r.querySelector('.row-value').value]), [['env', 'dev']]);
  rows[0].querySelector('.row-value').value = CANARIES[3];
  rows[1].querySelector('.row-value').value = CANARIES[0];
  gw.bump('payments', 'db'); // someone else writes version 2
  await ui.submit('form-replace');
  let put = gw.requests.filter((r) => r.method === 'PUT').pop();
  assert.equal(put.headers['if-match'], '"1"');
  assert.ok(ui.$('dlg-replace').open, 'stays open on a conflict');
  assert.match(ui.$('replace-error').textContent, /version_mismatch/);
  assert.match(ui.$('replace-error').textContent, /request id [\w-]+/);
  assert.ok(ui.passwords().every((v) => v === ''), 'values are wiped after the request, even when it failed');
  await ui.click(ui.$('dlg-replace').querySelector('button.cancel'));
  assert.ok(!ui.$('dlg-replace').open);

  await ui.click('act-replace');
  rows = ui.$('replace-pairs').querySelectorAll('.row');
  rows[0].querySelector('.row-value').value = CANARIES[3];
  rows[1].querySelector('.row-value').value = CANARIES[0];
  await ui.submit('form-replace');
  put = gw.requests.filter((r) => r.method === 'PUT').pop();
  assert.equal(put.headers['if-match'], '"2"');
  assert.deepEqual(put.body, { data: { password: CANARIES[3], user: CANARIES[0] }, labels: { env: 'dev' } });
  assert.ok(!ui.$('dlg-replace').open);
  assert.match(ui.$('status').textContent, /now version 3/);
  assert.equal(ui.rows().find((r) => r[0] === 'db')[2], '3', 'the row shows the new version');

  // Set one key.
  await ui.click('act-set');
  ui.type('set-key', 'token');
  ui.type('set-value', CANARIES[2]);
  await ui.submit('form-set');
  const setReq = gw.requests.filter((r) => r.method === 'PATCH').pop();
  assert.deepEqual(setReq.body, { set: { token: CANARIES[2] } });
  assert.equal(ui.$('set-value').value, '');
  assert.ok(!ui.$('dlg-set').open);
  assert.match(ui.$('details-meta').textContent, /token/);

  // Remove key.
  await ui.click('act-remove');
  assert.deepEqual(ui.$('remove-key').children.map((o) => o.value), ['password', 'token', 'user']);
  ui.$('remove-key').value = 'token';
  await ui.submit('form-remove');
  const unsetReq = gw.requests.filter((r) => r.method === 'PATCH').pop();
  assert.deepEqual(unsetReq.body, { unset: ['token'] });
  assert.ok(!ui.$('details-meta').textContent.includes('token'));
  assert.equal(ui.$('versions-body').children.length, 5);

  // Edit labels: prefilled, a PATCH of the labels alone with If-Match; values untouched.
  const dbBefore = gw.meta(gw.secrets.get('payments/db'));
  const shown = ui.$('versions-body').children.length;
  await ui.click('act-labels');
  assert.ok(ui.$('dlg-labels').open);
  rows = ui.$('labels-rows').querySelectorAll('.row');
  assert.deepEqual(rows.map((r) => [r.querySelector('.row-key').value, r.querySelector('.row-value').value]), [['env', 'dev']]);
  rows[0].querySelector('.row-value').value = 'prod';
  await ui.click('labels-add');
  rows = ui.$('labels-rows').querySelectorAll('.row');
  rows[1].querySelector('.row-key').value = 'team';
  rows[1].querySelector('.row-value').value = 'pay';
  await ui.submit('form-labels');
  const labelReq = gw.requests.filter((r) => r.method === 'PATCH').pop();
  assert.deepEqual(labelReq.body, { labels: { env: 'prod', team: 'pay' } });
  assert.equal(labelReq.headers['if-match'], `"${dbBefore.version}"`);
  assert.ok(!ui.$('dlg-labels').open);
  assert.match(ui.$('status').textContent, new RegExp(`Saved the labels of “db”: now version ${dbBefore.version + 1}`));
  assert.match(ui.$('details-meta').textContent, /team=pay/);
  assert.equal(ui.$('versions-body').children.length, shown + 1);
  assert.deepEqual(gw.secrets.get('payments/db').data, { password: CANARIES[3], user: CANARIES[0] }, 'the values are kept');

  // Delete: the dialog names the secret; If-Match is the version shown.
  await ui.click('act-delete');
  assert.ok(ui.$('dlg-delete').open);
  assert.match(ui.$('delete-text').textContent, /“db” of project “payments”/);
  assert.match(ui.$('delete-confirm').textContent, /Delete “db”/);
  await ui.click('delete-confirm');
  const del = gw.requests.find((r) => r.method === 'DELETE');
  assert.equal(del.path, '/v1/projects/payments/secrets/db');
  assert.equal(del.headers['if-match'], `"${dbBefore.version + 1}"`);
  assert.ok(!ui.visible('details'));
  assert.deepEqual(ui.rows().map((r) => r[0]), ['stripe']);

  assertNoValues(ui, gw);

  // Sign out forgets the token.
  await ui.click('sign-out');
  assert.equal(ui.session.getItem('secretgate.token'), null);
  assert.ok(ui.visible('sign-in') && !ui.visible('workspace') && !ui.visible('session'));
  assert.equal(ui.$('secrets-body').children.length, 0);
  assert.equal(ui.$('who').textContent, '', 'the name goes with the session');
});

test('a reader sees the list and details but no write button', async () => {
  const gw = gateway();
  const ui = await boot(gw);
  await ui.signIn('tok-reader');
  assert.ok(!ui.visible('add-secret'));
  await ui.openSecret('stripe');
  for (const id of ['act-replace', 'act-set', 'act-remove', 'act-labels', 'act-delete']) assert.ok(!ui.visible(id), id);
  assert.ok(!ui.visible('act-copy'), 'no project to copy into');
  assertNoValues(ui, gw);
});

test('copy to another project (read on the source, create on the target)', async () => {
  const gw = gateway();
  const ui = await boot(gw);
  await ui.signIn('tok-mixed');
  ui.$('project').value = 'payments';
  ui.$('project').dispatchEvent(event('change'));
  await settle();
  await ui.openSecret('stripe');
  assert.ok(ui.visible('act-copy'));
  await ui.click('act-copy');
  assert.deepEqual(ui.$('copy-project').children.map((o) => o.value), ['billing'], 'only projects one may create in');
  assert.equal(ui.$('copy-overwrite').disabled, false, 'an editor of billing may overwrite');
  ui.type('copy-as', 'stripe-copy');
  await ui.submit('form-copy');
  const cp = gw.requests.find((r) => r.path.endsWith('/copy'));
  assert.equal(cp.path, '/v1/projects/payments/secrets/stripe/copy');
  assert.deepEqual(cp.body, { to_project: 'billing', as: 'stripe-copy' });
  assert.match(ui.$('status').textContent, /Copied “stripe” to “stripe-copy” in project “billing” \(version 1\)/);
  assert.ok(gw.secrets.has('billing/stripe-copy'));

  // Copying again answers already_exists, shown in the dialog.
  await ui.click('act-copy');
  ui.type('copy-as', 'stripe-copy');
  await ui.submit('form-copy');
  assert.match(ui.$('copy-error').textContent, /already exists in project "billing" \(already_exists\) — request id/);
});

test('paging with load more, and the prefix filter', async () => {
  const gw = gateway();
  for (let i = 0; i < 120; i++) gw.put('payments', `app-${String(i).padStart(3, '0')}`, { k: 'v' });
  const ui = await boot(gw);
  await ui.signIn('tok-reader');
  assert.equal(ui.rows().length, 50);
  assert.ok(ui.visible('load-more'));
  assert.match(ui.$('secrets-caption').textContent, /50 shown, more to load/);
  await ui.click('load-more');
  assert.equal(ui.rows().length, 100);
  await ui.click('load-more');
  assert.equal(ui.rows().length, 121);
  assert.ok(!ui.visible('load-more'));
  assert.deepEqual(gw.requests.filter((r) => r.path === '/v1/projects/payments/secrets').map((r) => r.query.page_token || ''), ['', '50', '100']);

  ui.type('prefix', 'a/b');
  await ui.submit('filter-form');
  assert.match(ui.$('alert').textContent, /invalid prefix/);
  ui.type('prefix', 'app-11');
  await ui.submit('filter-form');
  assert.deepEqual(ui.rows().map((r) => r[0]), ['app-110', 'app-111', 'app-112', 'app-113', 'app-114', 'app-115', 'app-116', 'app-117', 'app-118', 'app-119']);
  assert.equal(gw.requests.pop().query.prefix, 'app-11');
  await ui.click('clear-filter');
  assert.equal(ui.rows().length, 50);
});

test('a stored token is reused, and a refused one ends the session', async () => {
  const gw = gateway();
  const session = new Storage();
  session.setItem('secretgate.token', 'tok-editor');
  session.setItem('secretgate.project', 'payments');
  let ui = await boot(gw, session);
  assert.ok(ui.visible('workspace'), 'signed in from sessionStorage');
  assert.equal(ui.$('project').value, 'payments', 'the project is remembered');

  // The token is revoked: the next call answers 401 and the UI signs out.
  delete gw.tokens['tok-editor'];
  await ui.openSecret('stripe');
  assert.ok(ui.visible('sign-in'));
  assert.equal(session.getItem('secretgate.token'), null);
  assert.match(ui.$('alert').textContent, /invalid bearer token \(unauthenticated\) — request id .+Sign in again/);

  session.setItem('secretgate.token', 'tok-gone');
  ui = await boot(gw, session);
  assert.ok(ui.visible('sign-in'));
  assert.equal(session.getItem('secretgate.token'), null);
  assert.match(ui.$('alert').textContent, /unauthenticated/);
});

test('server errors are shown with their request id; a vanished secret leaves the list', async () => {
  const gw = gateway();
  const ui = await boot(gw);
  await ui.signIn('tok-editor');
  ui.$('project').value = 'payments';
  ui.$('project').dispatchEvent(event('change'));
  await settle();
  gw.secrets.delete('payments/stripe');
  await ui.openSecret('stripe');
  assert.match(ui.$('alert').textContent, /not found \(not_found\) — request id/);
  assert.equal(ui.$('alert').getAttribute('role'), 'alert');
  assert.deepEqual(ui.rows(), []);

  gw.failNext = { status: 503, code: 'backend_unavailable', message: 'backend "src" is unavailable' };
  await ui.click('clear-filter');
  assert.match(ui.$('alert').textContent, /backend_unavailable/);
  assert.ok(ui.visible('alert-dismiss'));
  await ui.click('alert-dismiss');
  assert.equal(ui.$('alert').textContent, '');
});
