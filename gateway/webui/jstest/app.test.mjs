// Tests of static/app.js on a minimal fake DOM (fakedom.mjs) against an
// in-memory gateway (fakegateway.mjs): sign in/out, the list and paging,
// every dialog, the permissions, and that no value ever reaches the page.
import test, { afterEach } from 'node:test';
import assert from 'node:assert/strict';

import { Storage, dump, event } from './fakedom.mjs';
import { FakeGateway } from './fakegateway.mjs';
import { boot, fieldError, settle, shutdown } from './ui.mjs';

const CANARIES = ['CANARY-user-7d1f', 'CANARY-pass-93ab', 'CANARY-token-51c0', 'CANARY-replaced-e2aa'];

afterEach(shutdown);

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
  assert.deepEqual(ui.rows(), [['stripe', 'api_key', '1', 'team=pay', '2025-06-01 10:00']]);
  const time = ui.$('secrets-body').querySelector('time');
  assert.equal(time.getAttribute('title'), '2025-06-01 10:00:01 UTC', 'the list’s short time has the whole one in its title');
  assert.equal(time.getAttribute('datetime'), '2025-06-01T10:00:01.000Z');
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

  // An empty value is refused unless allowed, next to it; nothing is sent, nothing is wiped.
  const before = gw.requests.length;
  await ui.submit('form-add');
  assert.equal(fieldError(rows[1].querySelector('.row-value')), 'Enter a value, remove this row, or tick “Allow empty values”.');
  assert.equal(rows[1].querySelector('.row-value').getAttribute('aria-invalid'), 'true');
  assert.equal(fieldError(rows[0].querySelector('.row-value')), '', 'the filled row has no error');
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
  assert.match(ui.$('replace-error').textContent, /^Someone changed “db” after version 1, the one this form started from: nothing was saved\. Close the form and open it again \(version_mismatch\)/);
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
  const asked = gw.requests.length;
  await ui.submit('filter-form');
  assert.equal(fieldError(ui.$('prefix')), 'Names never contain “/”: filter with letters, digits, “_” or “-”.');
  assert.equal(gw.requests.length, asked, 'nothing asked');
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

// --- multi-line values: sent byte for byte ---

// A PEM block as a key file holds it: 64-character lines, LF line breaks and
// a final one. The fake DOM drops line breaks from <input> values and turns
// CR LF into LF in <textarea> values, as browsers do.
const PEM = `-----BEGIN PRIVATE KEY-----\n${'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7CANARYpem'.padEnd(64, 'x')}\n${'CANARY-pem-4b1e'.padEnd(64, 'y')}\nAbCd==\n-----END PRIVATE KEY-----\n`;
const CRLF = 'CANARY-crlf-1\r\nline two\r\n\r\nlast line\r\n';

/** paste does what a browser does: a paste event, then, unless cancelled, the text goes into the field. */
async function paste(el, text) {
  const ev = event('paste', { bubbles: true, clipboardData: { getData: (type) => (type === 'text/plain' ? text : '') } });
  if (el.dispatchEvent(ev)) el.value += text;
  await settle();
}

/** pickFile selects a file of these bytes in a file input, as a person would. */
async function pickFile(input, bytes, name) {
  const data = bytes instanceof Uint8Array ? bytes : new TextEncoder().encode(bytes);
  input.files = [{ name, size: data.byteLength, arrayBuffer: async () => data.slice().buffer }];
  input.dispatchEvent(event('change', { bubbles: true }));
  await settle();
}

async function toggle(input, checked) {
  input.checked = checked;
  input.dispatchEvent(event('change', { bubbles: true }));
  await settle();
}

/** sent is the value of key in the JSON body the UI sent last with method, from the raw body. */
function sent(gw, method, key) {
  const r = gw.requests.filter((x) => x.method === method).pop();
  assert.ok(r, `a ${method} was sent`);
  const body = JSON.parse(r.raw);
  const data = body.data || body.set;
  return data[key];
}

function assertValueGone(ui, gw, values) {
  const text = dump(ui.doc);
  for (const v of values) {
    for (const line of v.split(/\r?\n/).filter((l) => l.includes('CANARY'))) assert.ok(!text.includes(line), 'a value is in the page');
  }
  assertNoValues(ui, gw);
}

test('a PEM key pasted into a value field keeps its line breaks (add secret)', async () => {
  const gw = gateway();
  const ui = await boot(gw);
  await ui.signIn('tok-editor');
  await ui.click('add-secret');
  ui.type('add-name', 'tls');
  const row = ui.$('add-pairs').querySelector('.row');
  row.querySelector('.row-key').value = 'key';
  const single = row.querySelector('.row-value');
  assert.equal(single.getAttribute('type'), 'password', 'a value starts as a password field');
  await paste(single, PEM);
  const multi = row.querySelector('.row-value');
  assert.equal(multi.localName, 'textarea', 'the field became multi-line');
  assert.equal(row.querySelector('.value-multi').checked, true);
  assert.equal(row.querySelector('.value-eol').value, 'lf');
  assert.equal(multi.value, PEM);
  const label = ui.$('add-pairs').querySelectorAll('label').find((l) => l.getAttribute('for') === multi.id);
  assert.ok(label, 'the textarea has the value label');
  assert.match(row.querySelector('.value-note').textContent, /switched to multi-line, with LF line breaks/);
  await ui.submit('form-add');
  assert.equal(sent(gw, 'POST', 'key'), PEM, 'the PEM went out byte for byte');
  assert.ok(gw.requests.find((r) => r.method === 'POST').raw.includes(JSON.stringify(PEM)), 'as one JSON string with its \\n escapes');
  assert.equal(gw.secrets.get('billing/tls').data.key, PEM, 'stored in the project shown first');
  assert.ok(!ui.$('dlg-add').open);
  assertValueGone(ui, gw, [PEM]);
});

test('CR LF values: chosen, pasted, or loaded from a file, sent byte for byte (set one key)', async () => {
  const gw = gateway();
  const ui = await boot(gw);
  await ui.signIn('tok-editor');
  ui.$('project').value = 'payments';
  ui.$('project').dispatchEvent(event('change'));
  await settle();
  await ui.openSecret('stripe');
  const field = () => ui.$('set-value-box').querySelector('.value-field');
  const q = (sel) => field().querySelector(sel);

  // Typed in the multi-line field with CR LF chosen: the textarea holds LF, CR LF goes out.
  await ui.click('act-set');
  ui.type('set-key', 'crlf');
  await toggle(q('.value-multi'), true);
  assert.equal(q('.row-value').localName, 'textarea');
  assert.ok(!q('.value-eol').parentElement.hidden, 'the line break choice shows with multi-line');
  q('.value-eol').value = 'crlf';
  ui.type('set-value', CRLF);
  assert.equal(ui.$('set-value').value, CRLF.replace(/\r\n/g, '\n'), 'a textarea reports LF');
  await ui.submit('form-set');
  assert.equal(sent(gw, 'PATCH', 'crlf'), CRLF);
  assert.equal(gw.secrets.get('payments/stripe').data.crlf, CRLF);
  assert.ok(!ui.$('dlg-set').open);

  // Pasted into the password field: CR LF is recognised and kept.
  await ui.click('act-set');
  ui.type('set-key', 'pasted');
  await paste(ui.$('set-value'), CRLF);
  assert.equal(q('.row-value').localName, 'textarea');
  assert.equal(q('.value-eol').value, 'crlf');
  await ui.submit('form-set');
  assert.equal(sent(gw, 'PATCH', 'pasted'), CRLF);

  // Pasted into the multi-line field: the line break choice follows the paste.
  await ui.click('act-set');
  ui.type('set-key', 'pasted2');
  await toggle(q('.value-multi'), true);
  await paste(ui.$('set-value'), CRLF);
  assert.equal(q('.value-eol').value, 'crlf');
  await ui.submit('form-set');
  assert.equal(sent(gw, 'PATCH', 'pasted2'), CRLF);

  // Mixed line breaks cannot go through a form: refused, nothing altered, nothing sent.
  const before = gw.requests.length;
  await ui.click('act-set');
  ui.type('set-key', 'mixed');
  await paste(ui.$('set-value'), 'a\r\nb\nc');
  assert.equal(ui.$('set-value').value, '', 'the paste was refused');
  assert.equal(q('.row-value').localName, 'input');
  assert.match(q('.value-note').textContent, /mixes kinds of line break.*load the value from a file/);
  await toggle(q('.value-multi'), true);
  ui.type('set-value', 'one\ntwo');
  await paste(ui.$('set-value'), '\r\nthree');
  assert.equal(ui.$('set-value').value, 'one\ntwo', 'CR LF pasted into an LF value was refused');
  assert.match(q('.value-note').textContent, /other line breaks than the value/);
  await toggle(q('.value-multi'), false);
  assert.equal(q('.value-multi').checked, true, 'back to one line would drop the line breaks');
  assert.match(q('.value-note').textContent, /remove them before switching to a single line/);

  // A file keeps any bytes of UTF-8 text: mixed line breaks, a lone CR, a byte order mark.
  const exact = '\ufeffCANARY-file-77\r\nb\nc\r\u00e9\u{1f511}\n';
  await pickFile(q('.value-file'), exact, 'key.txt');
  assert.match(q('.value-note').textContent, /content of the file “key\.txt” \(\d+ bytes\), sent exactly/);
  assert.equal(q('.row-value').disabled, true, 'the typed value is set aside');
  assert.equal(q('.value-file').value, '', 'the file input keeps no file');
  await ui.submit('form-set');
  assert.equal(gw.requests.length, before + 2, 'one PATCH (and the versions read after it)');
  assert.equal(sent(gw, 'PATCH', 'mixed'), exact);
  assert.equal(gw.secrets.get('payments/stripe').data.mixed, exact);

  // A file that is not UTF-8 is refused, naming the file only.
  await ui.click('act-set');
  ui.type('set-key', 'binary');
  await pickFile(q('.value-file'), new Uint8Array([0x41, 0xff, 0x42]), 'blob.bin');
  assert.match(q('.value-note').textContent, /invalid value: file "blob\.bin" is not UTF-8 text/);
  assert.equal(q('.row-value').disabled, false);
  const n = gw.requests.length;
  await ui.submit('form-set');
  assert.equal(fieldError(ui.$('set-value')), 'Enter a value, or tick “Allow an empty value”.', 'the dialog’s own checkbox, as labelled');
  assert.equal(gw.requests.length, n, 'nothing sent');
  await ui.click(ui.$('dlg-set').querySelector('button.cancel'));
  assertValueGone(ui, gw, [CRLF, exact]);
});

test('a value loaded from a file is forgotten after the request, even a refused one (replace values)', async () => {
  const gw = gateway();
  const ui = await boot(gw);
  await ui.signIn('tok-editor');
  ui.$('project').value = 'payments';
  ui.$('project').dispatchEvent(event('change'));
  await settle();
  await ui.openSecret('stripe');
  await ui.click('act-replace');
  const row = ui.$('replace-pairs').querySelector('.row');
  assert.equal(row.querySelector('.row-key').value, 'api_key');
  await pickFile(row.querySelector('.value-file'), PEM, 'key.pem');
  gw.bump('payments', 'stripe');
  await ui.submit('form-replace');
  assert.match(ui.$('replace-error').textContent, /version_mismatch/);
  assert.equal(sent(gw, 'PUT', 'api_key'), PEM);
  assert.equal(row.querySelector('.value-note').textContent, '', 'the file is gone');
  const n = gw.requests.length;
  await ui.submit('form-replace');
  assert.match(fieldError(row.querySelector('.row-value')), /^Enter a value/);
  assert.equal(gw.requests.length, n);
  await ui.click(ui.$('dlg-replace').querySelector('button.cancel'));
  assertValueGone(ui, gw, [PEM]);
});
