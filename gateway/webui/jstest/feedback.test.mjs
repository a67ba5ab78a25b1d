// Tests of what the page says, on the fake DOM against the fake gateway:
// errors next to the field they are about (checked before sending, or
// named by the gateway), a status line that never shows an old message,
// the empty list's help, what each role may do, and "Copy" within the only
// project.
import test, { afterEach } from 'node:test';
import assert from 'node:assert/strict';

import { dump, event } from './fakedom.mjs';
import { FakeGateway } from './fakegateway.mjs';
import { boot, fieldError, settle, shutdown } from './ui.mjs';

afterEach(shutdown);

const CANARY = 'CANARY-feedback-31d7';

function gateway() {
  const gw = new FakeGateway({
    'tok-editor': { payments: 'editor', billing: 'editor' },
    'tok-reader': { payments: 'reader' },
    'tok-solo': { payments: 'admin' },
  });
  gw.put('payments', 'stripe', { api_key: 'x' }, { team: 'pay' });
  return gw;
}

async function signedIn(token, project = 'payments') {
  const gw = gateway();
  const ui = await boot(gw);
  await ui.signIn(token);
  if (ui.$('project').value !== project) {
    ui.$('project').value = project;
    ui.$('project').dispatchEvent(event('change'));
    await settle();
  }
  return { gw, ui };
}

const writes = (gw) => gw.requests.filter((r) => r.method !== 'GET');

test('Add Secret: every problem said next to its field before anything is sent, in plain words', async () => {
  const { gw, ui } = await signedIn('tok-editor');
  assert.equal(ui.$('status').textContent, '', 'choosing a project cleared “Signed in.”');
  await ui.click('add-secret');
  ui.type('add-name', 'my secret');
  await ui.click('add-pair');
  await ui.click('add-label');
  const rows = ui.$('add-pairs').querySelectorAll('.row');
  rows[0].querySelector('.row-key').value = 'host';
  rows[0].querySelector('.row-value').value = CANARY;
  rows[1].querySelector('.row-key').value = 'host';
  rows[1].querySelector('.row-value').value = CANARY;
  const labels = ui.$('add-labels').querySelectorAll('.row');
  labels[0].querySelector('.row-key').value = 'Env';
  labels[0].querySelector('.row-value').value = 'prod';
  labels[1].querySelector('.row-key').value = 'team';
  labels[1].querySelector('.row-value').value = 'x'.repeat(64);
  await ui.submit('form-add');
  assert.equal(writes(gw).length, 0, 'nothing sent');
  assert.equal(fieldError(ui.$('add-name')), 'A name cannot contain spaces: use letters, digits, “_” or “-”.');
  assert.equal(ui.$('add-name').getAttribute('aria-invalid'), 'true');
  assert.equal(ui.$('add-name').getAttribute('aria-describedby'), 'add-name-error');
  assert.equal(fieldError(rows[0].querySelector('.row-key')), '');
  assert.equal(fieldError(rows[1].querySelector('.row-key')), '“host” is given twice: each key once.');
  assert.equal(fieldError(labels[0].querySelector('.row-key')), 'Label names are lower case: “env”, not “Env”.');
  assert.equal(fieldError(labels[1].querySelector('.row-value')), 'A label value has at most 63 characters (this one has 64).');
  assert.equal(ui.$('add-error').textContent, 'Please correct the 4 fields marked below.');
  assert.equal(ui.doc.activeElement, ui.$('add-name'), 'the first field in error has the focus');
  assert.equal(rows[0].querySelector('.row-value').value, CANARY, 'what was typed is kept');

  // Corrected: the marks go, the secret is created.
  ui.type('add-name', 'db');
  rows[1].querySelector('.row-key').value = 'port';
  labels[0].querySelector('.row-key').value = 'env';
  labels[1].querySelector('.row-value').value = 'pay';
  await ui.submit('form-add');
  assert.deepEqual(writes(gw)[0].body, { name: 'db', data: { host: CANARY, port: CANARY }, labels: { env: 'prod', team: 'pay' } });
  assert.equal(ui.doc.querySelectorAll('[aria-invalid]').length, 0);
  assert.ok(!dump(ui.doc).includes(CANARY), 'no value in the page');
});

test('the gateway’s invalid_argument answers show next to the field they name', async () => {
  const { gw, ui } = await signedIn('tok-editor');
  await ui.click('add-secret');
  ui.type('add-name', 'db');
  await ui.click('add-pair');
  const rows = ui.$('add-pairs').querySelectorAll('.row');
  rows[0].querySelector('.row-key').value = 'user';
  rows[0].querySelector('.row-value').value = CANARY;
  rows[1].querySelector('.row-key').value = 'host';
  rows[1].querySelector('.row-value').value = CANARY;
  gw.failNext = { status: 400, code: 'invalid_argument', message: 'invalid data: key "host" is given twice' };
  await ui.submit('form-add');
  assert.equal(fieldError(rows[1].querySelector('.row-key')), '“host” is given twice: each key once.');
  assert.equal(fieldError(rows[0].querySelector('.row-key')), '');
  assert.equal(ui.$('add-error').textContent, 'Please correct the field marked below.');
  assert.ok(!/invalid data|invalid_argument/.test(dump(ui.doc)), 'not in the API’s wording');
  assert.equal(rows[0].querySelector('.row-value').value, '', 'values are wiped once sent, whatever the answer');

  gw.failNext = { status: 400, code: 'invalid_argument', message: 'invalid labels: key "Env" must match ^[a-z][a-z0-9_-]{0,62}$' };
  rows[0].querySelector('.row-value').value = CANARY;
  rows[1].querySelector('.row-value').value = CANARY;
  await ui.submit('form-add');
  const label = ui.$('add-labels').querySelector('.row-key');
  assert.equal(fieldError(label), 'Label names are lower case: “env”, not “Env”.', 'a key the form does not hold: its first row');
  assert.equal(fieldError(rows[1].querySelector('.row-key')), '', 'the earlier error is gone');

  // Other refusals keep their code and request id, in the dialog.
  gw.failNext = { status: 409, code: 'already_exists', message: 'secret "db" already exists' };
  rows[0].querySelector('.row-value').value = CANARY;
  rows[1].querySelector('.row-value').value = CANARY;
  await ui.submit('form-add');
  assert.match(ui.$('add-error').textContent, /^secret "db" already exists \(already_exists\) — request id /);
});

test('Set one key: a wrong key and an empty value, each said in this dialog’s words', async () => {
  const { gw, ui } = await signedIn('tok-editor');
  await ui.openSecret('stripe');
  await ui.click('act-set');
  ui.type('set-key', 'api key');
  await ui.submit('form-set');
  assert.equal(fieldError(ui.$('set-key')), 'A key cannot contain spaces: use letters, digits, “_”, “.” or “-”.');
  assert.equal(fieldError(ui.$('set-value')), 'Enter a value, or tick “Allow an empty value”.');
  assert.ok(!/remove the row|Allow empty values/.test(ui.$('dlg-set').textContent), 'no rows, no other box named');
  assert.equal(writes(gw).length, 0);
  ui.type('set-key', 'api_key');
  ui.$('set-allow-empty').checked = true;
  await ui.submit('form-set');
  assert.deepEqual(writes(gw)[0].body, { set: { api_key: '' } });
});

test('the status line shows no old message: cleared when a dialog opens or an action starts', async () => {
  const gw = gateway();
  const ui = await boot(gw);
  await ui.signIn('tok-reader');
  assert.equal(ui.$('status').textContent, 'Signed in.');
  await ui.openSecret('stripe');
  assert.equal(ui.$('status').textContent, '', 'opening a secret is a new action');

  const { ui: ed } = await signedIn('tok-editor');
  await ed.openSecret('stripe');
  await ed.click('act-set');
  ed.type('set-key', 'k');
  ed.type('set-value', CANARY);
  await ed.submit('form-set');
  assert.match(ed.$('status').textContent, /^Set key “k” of “stripe”/);
  await ed.click('act-remove');
  assert.equal(ed.$('status').textContent, '', 'the next dialog starts clean');
  await ed.click(ed.$('dlg-remove').querySelector('button.cancel'));
  ed.$('alert').textContent = 'an old error';
  await ed.click('add-secret');
  assert.equal(ed.$('alert').textContent, '', 'and so does the page’s alert');
});

test('an empty list says how to add a secret, from the page and from the CLI, as the role allows', async () => {
  const { ui } = await signedIn('tok-editor', 'billing');
  assert.ok(ui.visible('secrets-empty') && !ui.visible('secrets-table'));
  assert.equal(ui.$('empty-title').textContent, 'No secrets in “billing” yet.');
  assert.equal(ui.$('empty-text').textContent, 'Add one with “+ Add Secret” above, or from a terminal:');
  assert.equal(ui.$('empty-command').textContent, 'secretgate secret create NAME key=value --project billing');
  assert.ok(ui.visible('add-secret'));
  ui.type('prefix', 'zz');
  await ui.submit('filter-form');
  assert.equal(ui.$('empty-title').textContent, 'No secret name in “billing” starts with “zz”.');
  assert.ok(!ui.visible('empty-command'));

  const gw = new FakeGateway({ 'tok-reader': { empty: 'reader' } });
  const r = await boot(gw);
  await r.signIn('tok-reader');
  assert.equal(r.$('empty-text').textContent, 'Your role here cannot add secrets; someone whose role may create them can run:');
  assert.ok(!r.visible('add-secret'));
});

test('a reader is told what it may do, and shown no write button', async () => {
  const { ui } = await signedIn('tok-reader');
  assert.equal(
    ui.$('role').textContent,
    'In “payments” you may list secrets and their versions. You cannot add or change secrets here: ask someone whose role may. Values are never shown in this page.',
  );
  await ui.openSecret('stripe');
  assert.match(ui.$('details-hint').textContent, /^Values are never shown here, and your role in this project cannot change them/);
  const shown = ['act-replace', 'act-set', 'act-remove', 'act-labels', 'act-copy', 'act-delete'].filter((id) => ui.visible(id));
  assert.deepEqual(shown, []);
  assert.equal(ui.$('versions-body').querySelectorAll('button').length, 0, 'no rollback');

  const { ui: ed } = await signedIn('tok-editor');
  assert.match(ed.$('role').textContent, /add secrets, change them \(replace values, set or remove a key, edit labels, roll back\), and delete them\./);
  await ed.openSecret('stripe');
  assert.match(ed.$('details-hint').textContent, /^Values are write-only: you may replace them/);
});

test('"Copy" opens on the current project when it is the only one, and asks for a new name there', async () => {
  const { gw, ui } = await signedIn('tok-solo');
  await ui.openSecret('stripe');
  assert.ok(ui.visible('act-copy'));
  await ui.click('act-copy');
  assert.deepEqual(ui.$('copy-project').children.map((o) => [o.value, o.textContent]), [['payments', 'payments (this project)']]);
  assert.equal(ui.$('copy-project').value, 'payments');
  assert.equal(ui.$('copy-as-label').textContent, 'New name (needed within this project)');
  assert.equal(ui.$('copy-as').value, 'stripe-copy', 'a new name is offered');
  assert.equal(ui.doc.activeElement, ui.$('copy-as'));

  ui.type('copy-as', '');
  await ui.submit('form-copy');
  assert.equal(fieldError(ui.$('copy-as')), 'Within project “payments” the copy needs a new name: enter one.');
  ui.type('copy-as', 'stripe');
  await ui.submit('form-copy');
  assert.equal(fieldError(ui.$('copy-as')), 'Within project “payments” the copy needs a name other than “stripe”.');
  assert.equal(writes(gw).length, 0, 'nothing sent');

  // The gateway's word for the same mistake lands on the same field.
  ui.type('copy-as', 'stripe-2');
  gw.failNext = { status: 400, code: 'invalid_argument', message: 'invalid as: must differ from the source name when copying within one project' };
  await ui.submit('form-copy');
  assert.equal(fieldError(ui.$('copy-as')), 'Within the same project the copy needs a different name.');
  await ui.submit('form-copy');
  const cp = writes(gw).pop();
  assert.deepEqual(cp.body, { to_project: 'payments', as: 'stripe-2' });
  assert.ok(gw.secrets.has('payments/stripe-2'));
});
