// e2e.mjs drives the web UI's API client (static/api.js, the file the
// gateway embeds and serves) against a real gateway with node's fetch, and
// then the UI itself (static/app.js on the fake DOM of the unit tests) to
// write multi-line values, and the change stream read by static/events.js.
// internal/e2e/webui_test.go starts the gateway,
// runs it with:
//
//   SECRETGATE_ADDR          http://127.0.0.1:PORT
//   SECRETGATE_ADMIN_TOKEN   admin on every project
//   SECRETGATE_EDITOR_TOKEN  editor on payments and billing (no secrets.read)
//   SECRETGATE_READER_TOKEN  reader on payments
//   SECRETGATE_CANARY        a value to write; it must never be printed
//   SECRETGATE_PEM           a PEM block (LF line breaks) to paste in the UI
//   SECRETGATE_CRLF          a value with CR LF line breaks to paste in the UI
//
// and reads the values back through the API.
//
// It prints one "ok - step" line per step and exits 0, or prints the failed
// step and exits 1. It never prints a value (errors of the API never hold
// one, and assertion messages here name keys and versions only).

import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

import { APIError, Client } from '../static/api.js';
import { LiveStream } from '../static/events.js';
import { Document, Storage, event } from './fakedom.mjs';

const env = (k) => {
  const v = process.env[k];
  if (!v) {
    console.error(`missing environment variable ${k}`);
    process.exit(2);
  }
  return v;
};

const addr = env('SECRETGATE_ADDR');
const canary = env('SECRETGATE_CANARY');
const admin = new Client({ baseURL: addr, token: env('SECRETGATE_ADMIN_TOKEN') });
const editor = new Client({ baseURL: addr, token: env('SECRETGATE_EDITOR_TOKEN') });
const reader = new Client({ baseURL: addr, token: env('SECRETGATE_READER_TOKEN') });

class Failure extends Error {}

function check(cond, what) {
  if (!cond) throw new Failure(what);
}

/** rejects expects an APIError of a code and status (never prints a value). */
async function rejects(promise, code, status, what) {
  try {
    await promise;
  } catch (e) {
    check(e instanceof APIError, `${what}: an APIError, got ${e && e.name}`);
    check(e.code === code, `${what}: code ${code}, got ${e.code} (${e.message})`);
    check(e.status === status, `${what}: status ${status}, got ${e.status}`);
    check(status === 0 || /^[A-Za-z0-9._:-]{1,128}$/.test(e.requestId), `${what}: a request id`);
    return e;
  }
  throw new Failure(`${what}: expected ${code}, the call succeeded`);
}

const sameSet = (a, b) => a.length === b.length && [...a].sort().every((x, i) => x === [...b].sort()[i]);

/** until waits for cond (polling), at most 5 s. */
async function until(what, cond) {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 25));
  check(cond(), what);
}

let step = '';
async function run(name, fn) {
  step = name;
  await fn();
  console.log(`ok - ${name}`);
}

async function main() {
  await run('the served api.js is this file', async () => {
    const here = await readFile(fileURLToPath(new URL('../static/api.js', import.meta.url)), 'utf8');
    const resp = await fetch(`${addr}/ui/api.js`);
    check(resp.status === 200, `GET /ui/api.js: ${resp.status}`);
    check(/^text\/javascript/.test(resp.headers.get('content-type') || ''), 'api.js is served as JavaScript');
    check((await resp.text()) === here, 'the gateway serves the api.js on disk (rebuild the binary?)');
  });

  await run('projects and actions per subject', async () => {
    const a = await admin.projects();
    check(sameSet(a.map((p) => p.name), ['billing', 'payments']), 'admin sees billing and payments');
    check(a.every((p) => p.actions.includes('secrets.read') && p.actions.includes('project.migrate')), 'admin has every action');
    const e = await editor.projects();
    check(sameSet(e.map((p) => p.name), ['billing', 'payments']), 'editor sees billing and payments');
    const pe = e.find((p) => p.name === 'payments');
    check(sameSet(pe.actions, ['secrets.list', 'secrets.create', 'secrets.update', 'secrets.delete']), `editor actions: ${pe.actions}`);
    const r = await reader.projects();
    check(r.length === 1 && sameSet(r[0].actions, ['secrets.list', 'secrets.read']), 'reader: list and read on payments');
  });

  await run('a bad token is unauthenticated', async () => {
    const bad = new Client({ baseURL: addr, token: 'sgt_not_a_token' });
    await rejects(bad.projects(), 'unauthenticated', 401, 'projects with a bad token');
    await rejects(bad.list('payments'), 'unauthenticated', 401, 'list with a bad token');
  });

  await run('names are checked before any request', async () => {
    await rejects(editor.metadata('payments', '../billing'), 'invalid_argument', 0, 'bad name');
    await rejects(editor.list('Payments'), 'invalid_argument', 0, 'bad project');
  });

  let v = 0;
  await run('editor creates a secret with two keys and a label', async () => {
    const m = await editor.create('payments', { name: 'webui-db', data: { user: 'app', password: canary }, labels: { env: 'e2e' } });
    check(m.project === 'payments' && m.name === 'webui-db', 'metadata names the secret');
    check(m.version === 1, `version 1, got ${m.version}`);
    check(sameSet(m.keys, ['password', 'user']), 'keys password and user');
    check(m.labels.env === 'e2e', 'label env');
    check(!('data' in m), 'a write answers metadata, never data');
    v = m.version;
    await rejects(editor.create('payments', { name: 'webui-db', data: { k: 'v' } }), 'already_exists', 409, 'create twice');
    for (const n of ['webui-a1', 'webui-a2', 'webui-a3']) await editor.create('payments', { name: n, data: { k: n } });
  });

  await run('list with a prefix, page by page', async () => {
    const names = [];
    let pageToken = '';
    let pages = 0;
    do {
      const page = await editor.list('payments', { prefix: 'webui-a', pageSize: 1, pageToken });
      names.push(...page.secrets.map((m) => m.name));
      pageToken = page.nextPageToken;
      pages++;
      check(pages < 10, 'paging ends');
    } while (pageToken);
    check(names.join(',') === 'webui-a1,webui-a2,webui-a3', `pages in name order: ${names}`);
    check(pages >= 3, 'one secret per page');
    const all = await editor.listAll('payments', { prefix: 'webui-' });
    check(all.length === 4 && all.every((m) => !('data' in m)), 'listAll: 4 secrets, no data');
    const db = all.find((m) => m.name === 'webui-db');
    check(db && db.version === 1 && sameSet(db.keys, ['password', 'user']), 'the list shows keys and versions');
  });

  await run('metadata and versions', async () => {
    const m = await editor.metadata('payments', 'webui-db');
    check(m.version === v && m.labels.env === 'e2e' && !('data' in m), 'metadata');
    const vs = await editor.versions('payments', 'webui-db');
    check(vs.length === 1 && vs[0].version === 1 && vs[0].created_at, 'one version');
    await rejects(editor.metadata('payments', 'webui-nope'), 'not_found', 404, 'metadata of a missing secret');
  });

  await run('replace with If-Match, then a stale If-Match is version_mismatch', async () => {
    const m = await editor.metadata('payments', 'webui-db');
    const r = await editor.replace('payments', 'webui-db', { data: { user: 'app2', password: canary }, labels: { env: 'e2e', tier: 'db' } }, { ifMatchVersion: m.version });
    check(r.version === m.version + 1, `replace made version ${m.version + 1}`);
    check(r.labels.tier === 'db', 'labels replaced');
    await rejects(
      editor.replace('payments', 'webui-db', { data: { user: 'lost' } }, { ifMatchVersion: m.version }),
      'version_mismatch',
      412,
      'replace with a stale If-Match',
    );
    const after = await editor.metadata('payments', 'webui-db');
    check(after.version === r.version && sameSet(after.keys, ['password', 'user']), 'the stale replace changed nothing');
    v = after.version;
  });

  await run('patch: set one key, remove one key', async () => {
    const s = await editor.patch('payments', 'webui-db', { set: { extra: 'x' } });
    check(s.version === v + 1 && sameSet(s.keys, ['extra', 'password', 'user']), 'set added a key');
    const u = await editor.patch('payments', 'webui-db', { unset: ['extra'] }, { ifMatchVersion: s.version });
    check(u.version === s.version + 1 && sameSet(u.keys, ['password', 'user']), 'unset removed it');
    await rejects(editor.patch('payments', 'webui-db', { unset: ['password', 'user'] }), 'invalid_argument', 400, 'unsetting every key');
    await rejects(editor.patch('payments', 'webui-db', { set: { y: 'z' } }, { ifMatchVersion: s.version }), 'version_mismatch', 412, 'patch with a stale If-Match');
    const l = await editor.patch('payments', 'webui-db', { labels: { tier: 'db', team: 'pay' } }, { ifMatchVersion: u.version });
    check(l.version === u.version + 1 && l.labels.team === 'pay' && sameSet(l.keys, ['password', 'user']), 'labels patched alone, keys kept');
    v = l.version;
    const vs = await editor.versions('payments', 'webui-db');
    check(vs.map((x) => x.version).join(',') === '1,2,3,4,5', `versions 1-5, got ${vs.map((x) => x.version)}`);
  });

  await run('the editor cannot read values, nor copy them', async () => {
    // api.js has no way to read values; a raw request shows the gateway refuses it too.
    const e = await editor
      .request('GET', '/v1/projects/payments/secrets/webui-db')
      .then(() => null, (err) => err);
    check(e && e.code === 'permission_denied' && e.status === 403, 'GET of values as editor is permission_denied');
    await rejects(editor.copy('payments', 'webui-db', { toProject: 'billing' }), 'permission_denied', 403, 'copy as editor');
  });

  await run('reader cannot write', async () => {
    await rejects(reader.create('payments', { name: 'webui-r', data: { k: 'v' } }), 'permission_denied', 403, 'create as reader');
    await rejects(reader.delete('payments', 'webui-db'), 'permission_denied', 403, 'delete as reader');
  });

  await run('copy to another project', async () => {
    const c = await admin.copy('payments', 'webui-db', { toProject: 'billing' });
    check(c.project === 'billing' && c.name === 'webui-db' && c.version === 1, 'copy made billing/webui-db version 1');
    check(sameSet(c.keys, ['password', 'user']) && c.labels.tier === 'db', 'the copy has the keys and labels');
    await rejects(admin.copy('payments', 'webui-db', { toProject: 'billing' }), 'already_exists', 409, 'copy onto an existing name');
    const o = await admin.copy('payments', 'webui-db', { toProject: 'billing', overwrite: true });
    check(o.version === 2, 'overwrite made version 2');
    const same = await admin.copy('payments', 'webui-db', { as: 'webui-db-copy' });
    check(same.project === 'payments' && same.name === 'webui-db-copy', 'copy within the project under a new name');
    const m = await editor.metadata('billing', 'webui-db');
    check(m.version === 2, 'the editor sees the copy in billing');
  });

  await run('delete with If-Match', async () => {
    await rejects(editor.delete('payments', 'webui-db', { ifMatchVersion: v - 1 }), 'version_mismatch', 412, 'delete with a stale If-Match');
    await editor.delete('payments', 'webui-db', { ifMatchVersion: v });
    await rejects(editor.metadata('payments', 'webui-db'), 'not_found', 404, 'metadata after delete');
    await rejects(editor.delete('payments', 'webui-db'), 'not_found', 404, 'delete twice');
    const left = await editor.listAll('payments', { prefix: 'webui-' });
    check(left.map((m) => m.name).join(',') === 'webui-a1,webui-a2,webui-a3,webui-db-copy', `left: ${left.map((m) => m.name)}`);
  });

  await run('the change stream, read by events.js: events of writes, resumed with Last-Event-ID', async () => {
    const got = [];
    const states = [];
    // The reader watches; the editor writes, as two people would.
    const s = new LiveStream({
      open: ({ lastEventId, signal }) => reader.events('payments', { lastEventId, signal }),
      onEvent: (ev) => got.push(ev),
      onState: (kind, info) => states.push({ kind, ...info }),
    });
    s.start();
    try {
      await until('the stream opens', () => states.some((x) => x.kind === 'open'));
      await editor.create('payments', { name: 'webui-live', data: { k: canary } });
      await until('the created event', () => got.some((e) => e.type === 'secret.created'));
      const created = got.find((e) => e.type === 'secret.created');
      const d = JSON.parse(created.data);
      check(d.project === 'payments' && d.name === 'webui-live' && d.version === 1, `created: ${created.data}`);
      check(created.lastEventId === String(d.index), 'the id is the index');
      check(!created.data.includes(canary), 'no value in an event');

      s.stop();
      await editor.patch('payments', 'webui-live', { set: { k2: 'v' } });
      await editor.delete('payments', 'webui-live');
      s.start();
      await until('the events written while closed', () => got.some((e) => e.type === 'secret.deleted'));
      const open = states.filter((x) => x.kind === 'open');
      check(open.length === 2 && open[1].resumed === true, 'reopened with Last-Event-ID');
      const after = got.slice(1).map((e) => `${e.type}:${JSON.parse(e.data).version}:${e.lastEventId}`);
      check(after.join(',') === `secret.updated:2:${d.index + 1},secret.deleted:0:${d.index + 2}`, `replayed: ${after}`);
    } finally {
      s.stop();
    }
  });

  await run('the UI writes a pasted PEM key and a pasted CR LF value (app.js on the fake DOM)', async () => {
    const settle = async () => {
      for (let i = 0; i < 30; i++) await new Promise((r) => setImmediate(r));
    };
    // A browser's paste: the event, then (unless cancelled) the text goes in.
    const paste = async (el, text) => {
      const ev = event('paste', { bubbles: true, clipboardData: { getData: (type) => (type === 'text/plain' ? text : '') } });
      if (el.dispatchEvent(ev)) el.value += text;
      await settle();
    };
    const doc = new Document(await readFile(fileURLToPath(new URL('../static/index.html', import.meta.url)), 'utf8'));
    globalThis.document = doc;
    globalThis.window = { sessionStorage: new Storage() };
    // The page's same-origin requests, to the gateway.
    const nodeFetch = globalThis.fetch;
    globalThis.fetch = (url, init) => nodeFetch(new URL(url, addr), init);
    const $ = (id) => doc.getElementById(id);
    await import('../static/app.js');
    await settle();
    $('token').value = env('SECRETGATE_EDITOR_TOKEN');
    $('sign-in-form').querySelector('button[type="submit"]').click();
    await until('signed in', () => !$('workspace').hidden);
    $('project').value = 'payments';
    $('project').dispatchEvent(event('change'));
    await until('the list of payments', () => /project “payments”/.test($('secrets-caption').textContent));
    $('add-secret').click();
    $('add-name').value = 'webui-multiline';
    $('add-pair').click();
    const rows = $('add-pairs').querySelectorAll('.row');
    rows[0].querySelector('.row-key').value = 'pem';
    await paste(rows[0].querySelector('.row-value'), env('SECRETGATE_PEM'));
    rows[1].querySelector('.row-key').value = 'crlf';
    await paste(rows[1].querySelector('.row-value'), env('SECRETGATE_CRLF'));
    check(rows[1].querySelector('.value-eol').value === 'crlf', 'CR LF recognised in the paste');
    $('form-add').querySelector('button[type="submit"]').click();
    await until('the secret was created', () => /Created secret “webui-multiline” \(version 1\)/.test($('status').textContent));
    const m = await editor.metadata('payments', 'webui-multiline');
    check(sameSet(m.keys, ['crlf', 'pem']), `keys: ${m.keys}`);
    // Signing out closes the page's event stream: nothing keeps node running.
    $('sign-out').click();
    check($('live-state').textContent === 'Live updates paused', `live state after signing out: ${$('live-state').textContent}`);
  });
}

try {
  await main();
  console.log('webui e2e: all steps passed');
} catch (e) {
  // Failure messages and API errors name secrets, keys and codes, never values.
  const what = e instanceof Failure || e instanceof APIError ? `${e.code ? `${e.code}: ` : ''}${e.message}` : String(e && e.stack ? e.stack : e);
  console.error(`not ok - ${step}: ${what}`);
  process.exit(1);
}
