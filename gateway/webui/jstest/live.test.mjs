// Tests of the web UI's live list (static/live.js, events.js) and "Copy
// reference" (static/copyref.js): app.js on the fake DOM, against the fake
// gateway's event stream, with node's mock timers for the delays.
import test, { afterEach } from 'node:test';
import assert from 'node:assert/strict';

import { dump, event } from './fakedom.mjs';
import { FakeGateway } from './fakegateway.mjs';
import { boot, settle, shutdown } from './ui.mjs';
import { batchDelay, hiddenClose } from '../static/live.js';

afterEach(shutdown);

const CANARY = 'CANARY-live-5e0d';

function gateway() {
  const gw = new FakeGateway({
    'tok-editor': { payments: 'editor', billing: 'editor' },
    'tok-reader': { payments: 'reader' },
  });
  gw.put('payments', 'stripe', { api_key: 'x', webhook: 'y' }, { team: 'pay' });
  return gw;
}

/** signedIn boots the UI signed in as editor, with project payments open. */
async function signedIn(gw, opts) {
  const ui = await boot(gw, undefined, opts);
  await ui.signIn('tok-editor');
  ui.$('project').value = 'payments';
  ui.$('project').dispatchEvent(event('change'));
  await settle();
  return ui;
}

const lists = (gw, project = 'payments') => gw.requests.filter((r) => r.method === 'GET' && r.path === `/v1/projects/${project}/secrets`);
const streams = (gw, project = 'payments') => gw.requests.filter((r) => r.path === `/v1/projects/${project}/events`);
const reads = (gw, name) => gw.requests.filter((r) => r.method === 'GET' && r.path === `/v1/projects/payments/secrets/${name}/metadata`);
const row = (ui, name) => ui.rows().find((r) => r[0] === name);

/** flush lets the page read and apply the changes gathered (live.js waits batchDelay for more). */
async function flush(t) {
  await settle();
  t.mock.timers.tick(batchDelay);
  await settle();
}

function assertNoValueRead(ui, gw) {
  assert.ok(!dump(ui.doc).includes(CANARY), 'a value is in the page');
  for (const r of gw.requests) {
    assert.ok(!(r.method === 'GET' && /^\/v1\/projects\/[^/]+\/secrets\/[^/]+$/.test(r.path)), `the UI read values: ${r.path}`);
  }
}

test('the list shows what others create, change and delete, without a reload', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const gw = gateway();
  const ui = await signedIn(gw);
  assert.equal(streams(gw).length, 1, 'one stream for the open project');
  const s = streams(gw)[0];
  assert.equal(s.headers.authorization, 'Bearer tok-editor');
  assert.equal(s.headers.accept, 'text/event-stream');
  assert.ok(s.headers['last-event-id'] === undefined);
  assert.equal(ui.$('live-state').textContent, 'Live');
  assert.deepEqual(ui.rows().map((r) => r[0]), ['stripe']);
  const listed = lists(gw).length;
  assert.equal(listed, 1, 'listed once, after the stream opened');

  gw.write('payments', 'db', { user: CANARY }, { env: 'prod' });
  await flush(t);
  assert.deepEqual(row(ui, 'db').slice(0, 4), ['db', 'user', '1', 'env=prod'], 'a new secret shows, with its metadata');
  gw.write('payments', 'stripe', { api_key: CANARY });
  await flush(t);
  assert.deepEqual(row(ui, 'stripe').slice(0, 3), ['stripe', 'api_key', '2'], 'a change shows');
  gw.remove('payments', 'db');
  await flush(t);
  assert.deepEqual(ui.rows().map((r) => r[0]), ['stripe'], 'a deleted secret leaves');
  assert.equal(lists(gw).length, listed, 'no re-list: one metadata read per change');
  assert.equal(reads(gw, 'db').length, 1);
  assert.equal(reads(gw, 'stripe').length, 1);

  // Another project's changes are not this list's; nor names the filter hides.
  gw.write('billing', 'other', { k: 'v' });
  ui.type('prefix', 'str');
  await ui.submit('filter-form');
  gw.write('payments', 'db2', { k: 'v' });
  await flush(t);
  assert.deepEqual(ui.rows().map((r) => r[0]), ['stripe']);
  assert.equal(reads(gw, 'db2').length, 0, 'a name outside the filter is not even read');
  assert.equal(streams(gw).length, 1, 'the filter keeps the stream');
  assertNoValueRead(ui, gw);
});

test('a burst of changes costs one re-list, not a read per secret', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const gw = gateway();
  const ui = await signedIn(gw);
  for (let i = 0; i < 40; i++) gw.write('payments', `burst-${String(i).padStart(2, '0')}`, { k: 'v' });
  await flush(t);
  assert.equal(ui.rows().length, 41);
  const perSecret = gw.requests.filter((r) => /\/secrets\/burst-\d+\/metadata$/.test(r.path)).length;
  assert.ok(perSecret <= 20, `${perSecret} metadata reads for 40 changes`);
  assert.equal(lists(gw).length, 2, 'one re-list');
});

test('an open form is kept: the open secret changed by someone else is a notice, and Reload shows it', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const gw = gateway();
  const ui = await signedIn(gw);
  await ui.openSecret('stripe');
  assert.ok(!ui.visible('details-stale'));
  await ui.click('act-set');
  ui.type('set-key', 'token');
  ui.type('set-value', CANARY);

  gw.write('payments', 'stripe', { api_key: 'z' });
  await flush(t);
  assert.ok(ui.$('dlg-set').open, 'the form stays open');
  assert.equal(ui.$('set-key').value, 'token', 'with what was typed');
  assert.equal(ui.$('set-value').value, CANARY);
  assert.equal(row(ui, 'stripe')[2], '2', 'the list shows the change');
  assert.match(ui.$('details-meta').textContent, /webhook/, 'the details are not redrawn under the form');
  assert.ok(ui.visible('details-stale'));
  assert.equal(ui.$('details-stale-text').textContent, '“stripe” was changed by someone else (now version 2) — reload to see it.');
  assert.equal(ui.$('details-stale').getAttribute('role'), 'status');

  await ui.click(ui.$('dlg-set').querySelector('button.cancel'));
  await ui.click('details-reload');
  assert.ok(!ui.visible('details-stale'), 'reloaded: the notice goes');
  assert.ok(!ui.$('details-meta').textContent.includes('webhook'), 'the details show version 2');
  assert.equal(ui.$('versions-body').children.length, 2);

  // The user's own write is no one else's change: no notice, no extra read,
  // even when its event comes before its answer.
  const before = reads(gw, 'stripe').length;
  await ui.click('act-set');
  ui.type('set-key', 'token');
  ui.type('set-value', CANARY);
  const release = gw.holdWrites();
  await ui.submit('form-set');
  await flush(t); // the event is in, the answer is not
  assert.ok(!ui.visible('details-stale'), 'no notice while the answer is on its way');
  release();
  await flush(t);
  assert.ok(!ui.$('dlg-set').open);
  assert.equal(row(ui, 'stripe')[2], '3');
  assert.ok(!ui.visible('details-stale'), 'no notice for one’s own write');
  assert.equal(reads(gw, 'stripe').length, before, 'its event is recognised by its version');

  // Deleted by someone else: said, and Close closes.
  gw.remove('payments', 'stripe');
  await flush(t);
  assert.equal(ui.$('details-stale-text').textContent, '“stripe” was deleted by someone else.');
  assert.equal(ui.$('details-reload').textContent, 'Close');
  assert.deepEqual(ui.rows(), []);
  await ui.click('details-reload');
  assert.ok(!ui.visible('details'));
  assertNoValueRead(ui, gw);
});

test('a cut stream reopens with Last-Event-ID and misses nothing; resync and a gateway restart re-list', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const gw = gateway();
  const ui = await signedIn(gw);
  // Cut before any event: nothing to resume from, so the list is read again.
  gw.cut();
  await settle();
  assert.equal(ui.$('live-state').textContent, 'Reconnecting…');
  gw.write('payments', 'while-cut', { k: 'v' });
  t.mock.timers.tick(1000);
  await settle();
  assert.equal(streams(gw).length, 2);
  assert.equal(streams(gw)[1].headers['last-event-id'], undefined);
  assert.equal(lists(gw).length, 2, 'reopened without an id: re-listed');
  assert.ok(row(ui, 'while-cut'), 'the re-list has what was written meanwhile');

  // Cut after an event: reopened with its id, the gateway replays the rest.
  gw.write('payments', 'a1', { k: 'v' });
  await flush(t);
  gw.cut();
  await flush(t);
  gw.write('payments', 'a2', { k: 'v' });
  gw.remove('payments', 'a1');
  t.mock.timers.tick(1000);
  await flush(t);
  assert.equal(streams(gw).length, 3);
  assert.equal(streams(gw)[2].headers['last-event-id'], '2', 'the id of the last event seen');
  assert.equal(lists(gw).length, 2, 'resumed: no re-list');
  assert.deepEqual(ui.rows().map((r) => r[0]), ['a2', 'stripe', 'while-cut'], 'the events missed were replayed');
  assert.equal(ui.$('live-state').textContent, 'Live');

  // resync (a migration switch): re-list.
  gw.put('payments', 'migrated', { k: 'v' }); // written without an event, as on another backend
  gw.resync('payments');
  await flush(t);
  assert.equal(lists(gw).length, 3);
  assert.ok(row(ui, 'migrated'));

  // A gateway restart: ids start again, the old one is unknown: resync, re-list.
  gw.restart();
  gw.put('payments', 'after-restart', { k: 'v' });
  await settle();
  t.mock.timers.tick(1000);
  await settle();
  assert.equal(streams(gw).length, 4);
  assert.equal(streams(gw)[3].headers['last-event-id'], '5');
  assert.equal(lists(gw).length, 4);
  assert.ok(row(ui, 'after-restart'));
});

test('the stream follows the open project, ends with the session, and pauses in a tab hidden for long', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const gw = gateway();
  const ui = await boot(gw);
  await ui.signIn('tok-editor');
  assert.equal(gw.streamsOf('billing'), 1, 'the first project is followed');
  ui.$('project').value = 'payments';
  ui.$('project').dispatchEvent(event('change'));
  await settle();
  assert.equal(gw.streamsOf('billing'), 0, 'switching project closes its stream');
  assert.equal(gw.streamsOf('payments'), 1);

  gw.write('payments', 'seen', { k: 'v' });
  await flush(t);
  ui.doc.setVisibility('hidden');
  t.mock.timers.tick(hiddenClose - 1);
  await settle();
  ui.doc.setVisibility('visible');
  ui.doc.setVisibility('hidden');
  t.mock.timers.tick(hiddenClose - 1);
  await settle();
  assert.equal(gw.streamsOf('payments'), 1, 'a short absence keeps the stream');
  t.mock.timers.tick(1);
  await settle();
  assert.equal(gw.streamsOf('payments'), 0, 'hidden for long: closed');
  assert.equal(ui.$('live-state').textContent, 'Live updates paused');
  gw.write('payments', 'while-hidden', { k: 'v' });
  ui.doc.setVisibility('visible');
  await flush(t);
  assert.equal(gw.streamsOf('payments'), 1);
  assert.equal(streams(gw).at(-1).headers['last-event-id'], '1', 'resumed from the last event seen');
  assert.ok(row(ui, 'while-hidden'), 'what happened meanwhile shows');

  await ui.click('sign-out');
  assert.equal(gw.streamsOf('payments'), 0, 'signing out closes the stream');
  t.mock.timers.tick(120000);
  await settle();
  assert.equal(gw.streams.size, 0, 'and nothing reopens it');
});

test('a gateway without the stream (or a refusal) still lists, and says live updates are off', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const gw = gateway();
  gw.noEvents = true;
  const ui = await signedIn(gw);
  assert.deepEqual(ui.rows().map((r) => r[0]), ['stripe']);
  assert.equal(ui.$('live-state').textContent, 'Live updates off');
  t.mock.timers.tick(120000);
  await settle();
  assert.equal(streams(gw).length, 1, 'one try, no retry loop');
  assert.equal(streams(gw, 'billing').length, 1);
});

test('a stream slow to open does not hold the list back; one refused for the token ends the session', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const gw = gateway();
  gw.stallEvents = true;
  const ui = await signedIn(gw);
  assert.deepEqual(ui.rows(), [], 'waiting for the stream, so that no write falls between it and the list');
  t.mock.timers.tick(2000);
  await settle();
  assert.deepEqual(ui.rows().map((r) => r[0]), ['stripe'], 'listed after 2 s all the same');
  assert.equal(lists(gw).length, 1);

  // The token is revoked: the stream's next opening is refused, the session ends.
  gw.stallEvents = false;
  delete gw.tokens['tok-editor'];
  t.mock.timers.tick(45000); // the stalled request is taken for dead
  await settle();
  t.mock.timers.tick(1000);
  await settle();
  assert.ok(ui.visible('sign-in'), 'signed out');
  assert.match(ui.$('alert').textContent, /invalid bearer token \(unauthenticated\).*Sign in again/);
  assert.equal(ui.session.getItem('secretgate.token'), null);
});

test('Copy reference puts sg://PROJECT/SECRET/KEY on the clipboard and says so', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const written = [];
  const gw = gateway();
  const ui = await signedIn(gw, { navigator: { clipboard: { writeText: async (s) => written.push(s) } } });
  await ui.openSecret('stripe');
  const buttons = ui.$('details-meta').querySelectorAll('button.copy-ref');
  assert.deepEqual(buttons.map((b) => b.getAttribute('aria-label')), ['Copy reference sg://payments/stripe/api_key', 'Copy reference sg://payments/stripe/webhook']);
  await ui.click(buttons[1]);
  assert.deepEqual(written, ['sg://payments/stripe/webhook']);
  assert.equal(buttons[1].textContent, 'Copied ✓', 'the button confirms');
  assert.equal(ui.$('status').textContent, 'Copied the reference sg://payments/stripe/webhook to the clipboard.');
  assert.equal(ui.$('details-meta').querySelectorAll('input').length, 0, 'no fallback field');
  t.mock.timers.tick(2000);
  assert.equal(buttons[1].textContent, 'Copy reference');
  assertNoValueRead(ui, gw);
});

test('without clipboard access (plain HTTP, or refused), the reference is selected in a read-only field', async () => {
  for (const [what, navigator] of [
    ['no navigator.clipboard', {}],
    ['writeText refused', { clipboard: { writeText: async () => Promise.reject(new DOMException('denied', 'NotAllowedError')) } }],
  ]) {
    const gw = gateway();
    const ui = await signedIn(gw, { navigator });
    await ui.openSecret('stripe');
    const button = ui.$('details-meta').querySelector('button.copy-ref');
    await ui.click(button);
    await ui.click(button);
    const inputs = ui.$('details-meta').querySelectorAll('input');
    assert.equal(inputs.length, 1, `${what}: one field, however often clicked`);
    const input = inputs[0];
    assert.equal(input.value, 'sg://payments/stripe/api_key', what);
    assert.ok(input.hasAttribute('readonly'), what);
    assert.equal(input.getAttribute('aria-label'), 'Reference to copy');
    assert.equal(ui.doc.activeElement, input, `${what}: focused`);
    assert.deepEqual([input.selectionStart, input.selectionEnd], [0, input.value.length], `${what}: all of it selected`);
    assert.match(ui.$('status').textContent, /not available .* the reference sg:\/\/payments\/stripe\/api_key is selected, press Ctrl\+C/, what);
    assert.equal(button.textContent, 'Copy reference', `${what}: no false confirmation`);
    await shutdown();
  }
});
