// Tests of the version history and "Roll back to this version" on the fake
// DOM against the fake gateway: which keys each version added or removed,
// the rollback request (with the If-Match of the version seen), and a
// conflict said in plain words.
import test, { afterEach } from 'node:test';
import assert from 'node:assert/strict';

import { dump } from './fakedom.mjs';
import { FakeGateway } from './fakegateway.mjs';
import { boot, settle, shutdown } from './ui.mjs';

afterEach(shutdown);

const OLD = 'CANARY-old-6b1d';
const NEW = 'CANARY-new-90fe';

/** history: stripe at version 4, after a bad rotation that dropped a key and added one. */
function gateway() {
  const gw = new FakeGateway({ 'tok-editor': { payments: 'editor' }, 'tok-reader': { payments: 'reader' } });
  gw.put('payments', 'stripe', { api_key: OLD, webhook: OLD });
  gw.write('payments', 'stripe', { api_key: OLD, webhook: OLD }); // 2: same keys
  gw.write('payments', 'stripe', { api_key: OLD, webhook: OLD, extra: OLD }); // 3: + extra
  gw.write('payments', 'stripe', { api_key: NEW, extra: NEW }); // 4: - webhook
  return gw;
}

async function opened(token) {
  const gw = gateway();
  const ui = await boot(gw);
  await ui.signIn(token);
  await ui.openSecret('stripe');
  return { gw, ui };
}

const history = (ui) =>
  ui.$('versions-body').children.map((li) => [li.querySelector('.version-num').textContent, li.querySelector('.version-changes').textContent, !!li.querySelector('button.rollback')]);

test('the history says which keys each version added or removed', async () => {
  const { gw, ui } = await opened('tok-editor');
  const asked = gw.requests.filter((r) => r.path === '/v1/projects/payments/secrets/stripe/versions');
  assert.equal(asked[0].query.keys, 'true');
  assert.deepEqual(history(ui), [
    ['Version 4', 'Removed key webhook.', false],
    ['Version 3', 'Added key extra.', true],
    ['Version 2', 'Same keys as version 1: values or labels changed.', true],
    ['Version 1', 'Created with api_key and webhook.', true],
  ]);
  assert.ok(!dump(ui.doc).includes('CANARY'), 'no value in the page');
});

test('"Roll back to this version": a new version of the old values, If-Match the version seen', async () => {
  const { gw, ui } = await opened('tok-editor');
  const li = ui.$('versions-body').children.find((x) => x.getAttribute('data-version') === '3');
  await ui.click(li.querySelector('button.rollback'));
  assert.ok(ui.$('dlg-rollback').open);
  assert.equal(ui.$('dlg-rollback-title').textContent, 'Roll back “stripe” to version 3?');
  assert.match(ui.$('rollback-text').textContent, /^Version 3’s values \(keys api_key, extra, and webhook\) will be saved again as a new version 5 of “stripe”/);
  await ui.click('rollback-confirm');
  const post = gw.requests.find((r) => r.method === 'POST');
  assert.equal(post.path, '/v1/projects/payments/secrets/stripe/rollback');
  assert.deepEqual(post.body, { version: 3 });
  assert.equal(post.headers['if-match'], '"4"');
  assert.ok(!ui.$('dlg-rollback').open);
  assert.equal(ui.$('status').textContent, 'Rolled back “stripe” to version 3: now version 5.');
  assert.deepEqual(gw.secrets.get('payments/stripe').data, { api_key: OLD, webhook: OLD, extra: OLD });
  assert.deepEqual(history(ui)[0], ['Version 5', 'Added key webhook.', false]);
  assert.equal(ui.rows().find((r) => r[0] === 'stripe')[2], '5');
  assert.ok(!dump(ui.doc).includes('CANARY'));
});

test('a rollback refused because someone changed the secret meanwhile says so, and changes nothing', async () => {
  const { gw, ui } = await opened('tok-editor');
  const li = ui.$('versions-body').children.find((x) => x.getAttribute('data-version') === '1');
  await ui.click(li.querySelector('button.rollback'));
  gw.bump('payments', 'stripe'); // version 5, by someone else
  await ui.click('rollback-confirm');
  assert.ok(ui.$('dlg-rollback').open, 'stays open');
  assert.match(
    ui.$('rollback-error').textContent,
    /^Someone changed “stripe” after version 4, the one you saw: nothing was rolled back\. Close this, reload the details and look at the history again \(version_mismatch\) — request id /,
  );
  assert.equal(gw.secrets.get('payments/stripe').versions.length, 5, 'no version written');
  await ui.click(ui.$('dlg-rollback').querySelector('button.cancel'));
  await settle();
  // The live list saw the change: the details say so.
  assert.ok(ui.visible('details-stale'));
});

test('a reader sees the history, without rollback', async () => {
  const { ui } = await opened('tok-reader');
  assert.equal(history(ui).length, 4);
  assert.ok(history(ui).every(([, , button]) => !button));
});
