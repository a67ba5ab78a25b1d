// Tests of filling values without typing them, on the fake DOM against the
// fake gateway: a pasted .env block fills Add Secret's rows, and
// "Generate…" puts a random value in a field. Neither ever writes a value
// into the page.
import test, { afterEach } from 'node:test';
import assert from 'node:assert/strict';

import { dump, event, markup } from './fakedom.mjs';
import { FakeGateway } from './fakegateway.mjs';
import { boot, fieldError, settle, shutdown } from './ui.mjs';

afterEach(shutdown);

const A = 'CANARY-env-a-11f0';
const B = 'CANARY-env-b-52c9';
const PEM = '-----BEGIN KEY-----\nCANARY-env-pem-77aa\n-----END KEY-----\n';

async function addDialog() {
  const gw = new FakeGateway({ 'tok-editor': { payments: 'editor' } });
  const ui = await boot(gw);
  await ui.signIn('tok-editor');
  await ui.click('add-secret');
  ui.type('add-name', 'app-env');
  return { gw, ui, q: (sel) => ui.$('dlg-add').querySelector(sel) };
}

const keysOf = (ui) => ui.$('add-pairs').querySelectorAll('.row').map((r) => r.querySelector('.row-key').value);

/** assertNoValue: no value in the page's markup (the fields hold them in memory until sent). */
function assertNoValue(ui, values) {
  const text = markup(ui.doc);
  for (const v of values) for (const line of v.split('\n').filter((l) => l.includes('CANARY'))) assert.ok(!text.includes(line), 'a value is in the page');
}

test('a .env block pasted in its text area fills the rows; the values go out exactly', async () => {
  const { gw, ui, q } = await addDialog();
  // A row typed before keeps its place; one of the same key is updated.
  const first = ui.$('add-pairs').querySelector('.row');
  first.querySelector('.row-key').value = 'KEEP';
  first.querySelector('.row-value').value = 'typed';
  assert.ok(q('.env-panel').hidden);
  await ui.click(q('.env-open'));
  assert.ok(!q('.env-panel').hidden);
  assert.equal(q('.env-open').getAttribute('aria-expanded'), 'true');
  q('.env-text').value = `# the app's settings\nexport A=${A}\nB="${B}" # quoted\nPEM="${PEM.replace(/\n/g, '\\n')}"\n\nEMPTY_OK=''\nMIXED="x\\ny\\r\\nz"\n`;
  await ui.click(q('.env-fill'));
  assert.deepEqual(keysOf(ui), ['KEEP', 'A', 'B', 'PEM', 'EMPTY_OK', 'MIXED']);
  assert.equal(q('.env-note').textContent, 'Filled 5 keys from the .env block: A, B, PEM, EMPTY_OK, MIXED (2 multi-line).');
  const mixed = ui.$('add-pairs').querySelectorAll('.row')[5];
  assert.match(mixed.querySelector('.value-note').textContent, /mixes kinds of line break: it is kept exactly, in memory/, 'a form cannot hold it: memory');
  assert.equal(q('.env-text').value, '', 'the block is forgotten');
  assert.ok(q('.env-panel').hidden);
  const pemRow = ui.$('add-pairs').querySelectorAll('.row')[3];
  assert.equal(pemRow.querySelector('.row-value').localName, 'textarea', 'a multi-line value gets the multi-line field');
  assert.equal(pemRow.querySelector('.value-eol').value, 'lf');
  assertNoValue(ui, [A, B, PEM]);

  ui.$('add-allow-empty').checked = true;
  await ui.submit('form-add');
  const post = gw.requests.find((r) => r.method === 'POST');
  assert.deepEqual(JSON.parse(post.raw).data, { KEEP: 'typed', A, B, PEM, EMPTY_OK: '', MIXED: 'x\ny\r\nz' });
});

test('a .env block with a wrong line fills nothing and says which line, without the value', async () => {
  const { gw, ui, q } = await addDialog();
  await ui.click(q('.env-open'));
  q('.env-text').value = `A=${A}\nthis line has no equals ${B}\nA=${B}`;
  await ui.click(q('.env-fill'));
  assert.deepEqual(keysOf(ui), [''], 'no row filled');
  assert.deepEqual(q('.env-errors').children.map((li) => li.textContent), ['Line 2: no “=”: write KEY=value.', 'Line 3: “A” was already set on line 1.']);
  assert.equal(q('.env-text').getAttribute('aria-invalid'), 'true');
  assert.equal(ui.doc.activeElement, q('.env-text'));
  assertNoValue(ui, [A, B]);
  // Cancel forgets the block.
  await ui.click(q('.env-cancel'));
  assert.equal(q('.env-text').value, '');
  assert.equal(q('.env-errors').children.length, 0);
  assert.equal(gw.requests.filter((r) => r.method === 'POST').length, 0);
});

test('a .env block pasted into a key field fills the rows instead', async () => {
  const { gw, ui } = await addDialog();
  const key = ui.$('add-pairs').querySelector('.row-key');
  const ev = event('paste', { bubbles: true, clipboardData: { getData: (t) => (t === 'text/plain' ? `A=${A}\r\nB=${B}\r\n` : '') } });
  const kept = key.dispatchEvent(ev);
  await settle();
  assert.equal(kept, false, 'the paste did not go into the key field');
  assert.deepEqual(keysOf(ui), ['A', 'B']);
  await ui.submit('form-add');
  assert.deepEqual(JSON.parse(gw.requests.find((r) => r.method === 'POST').raw).data, { A, B });

  // A key typed or pasted plainly stays a key.
  await ui.click('add-secret');
  const k2 = ui.$('add-pairs').querySelector('.row-key');
  assert.equal(k2.dispatchEvent(event('paste', { bubbles: true, clipboardData: { getData: () => 'api_key' } })), true);
});

test('"Generate…": a random value of the chosen length and characters, never shown', async () => {
  const { gw, ui } = await addDialog();
  const row = ui.$('add-pairs').querySelector('.row');
  const g = (sel) => row.querySelector(sel);
  row.querySelector('.row-key').value = 'token';
  assert.ok(g('.gen-panel').hidden);
  await ui.click(g('.gen-open'));
  assert.ok(!g('.gen-panel').hidden);
  g('.gen-length').value = '2';
  await ui.click(g('.gen-go'));
  assert.equal(fieldError(g('.gen-length')), 'Enter a length from 4 to 1024.');
  assert.equal(g('.row-value').value, '', 'nothing generated');

  g('.gen-length').value = '48';
  g('.gen-alphabet').value = 'hex';
  await ui.click(g('.gen-go'));
  const value = g('.row-value').value;
  assert.match(value, /^[0-9a-f]{48}$/);
  assert.equal(g('.row-value').getAttribute('type'), 'password', 'in the hidden field');
  assert.match(g('.value-note').textContent, /^Generated a random value: 48 characters \(hexadecimal\), about 192 bits\. It stays hidden/);
  assert.ok(g('.gen-panel').hidden);
  assert.ok(!markup(ui.doc).includes(value), 'only in the field’s memory, not in the markup');
  assert.equal(dump(ui.doc).split(value).length, 2, 'in one field only');

  await ui.click(g('.gen-open'));
  await ui.click(g('.gen-go'));
  const second = g('.row-value').value;
  assert.match(second, /^[0-9a-f]{48}$/, 'the choices are kept while the dialog is open');
  assert.notEqual(second, value);
  await ui.submit('form-add');
  assert.equal(JSON.parse(gw.requests.find((r) => r.method === 'POST').raw).data.token, second);
  assert.equal(g('.row-value').value, '', 'wiped after sending');
});
