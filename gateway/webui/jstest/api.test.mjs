// Unit tests of static/api.js against a fake fetch: node --test gateway/webui/jstest/
import test from 'node:test';
import assert from 'node:assert/strict';

import {
  APIError,
  Client,
  ifMatch,
  validKey,
  validLabelKey,
  validName,
  validPrefix,
  validProject,
} from '../static/api.js';

/** fakeFetch records calls and answers from a queue of {status, body, headers}. */
function fakeFetch(...answers) {
  const calls = [];
  const f = async (url, init) => {
    calls.push({ url, init, headers: { ...init.headers }, body: init.body === undefined ? undefined : JSON.parse(init.body) });
    const a = answers.shift();
    if (!a) throw new Error(`unexpected call ${init.method} ${url}`);
    if (a.throws) throw a.throws;
    const headers = new Headers(a.headers || {});
    const text = a.raw !== undefined ? a.raw : a.body === undefined ? '' : JSON.stringify(a.body);
    return new Response(a.status === 204 ? null : text, { status: a.status || 200, headers });
  };
  f.calls = calls;
  return f;
}

const meta = (over = {}) => ({
  project: 'payments',
  name: 'db',
  keys: ['password', 'user'],
  version: 1,
  labels: {},
  created_at: '2025-06-01T10:00:00Z',
  updated_at: '2025-06-01T10:00:00Z',
  ...over,
});

function client(f) {
  return new Client({ baseURL: 'http://gw.test/', token: 'sgt_abc', fetch: f });
}

test('name rules match sdk/charset.go', () => {
  for (const ok of ['a', '0', 'payments', 'a-b', 'a'.repeat(63), 'x1-2-y']) assert.ok(validProject(ok), ok);
  for (const bad of ['', '-a', 'a-', 'A', 'a_b', 'a'.repeat(64), 'a b', 'ä', 'a\n']) assert.ok(!validProject(bad), JSON.stringify(bad));

  for (const ok of ['a', 'Z', '9', 'db-config', 'A_b-C', 'a'.repeat(128)]) assert.ok(validName(ok), ok);
  for (const bad of ['', '_a', '-a', 'a.b', 'a/b', 'a'.repeat(129), '../x', 'a b', 'é', 'a\n', '%2e']) assert.ok(!validName(bad), JSON.stringify(bad));

  for (const ok of ['_', '-', 'a_', 'stripe-']) assert.ok(validPrefix(ok), ok);
  for (const bad of ['', 'a.', 'a/b', 'a'.repeat(129)]) assert.ok(!validPrefix(bad), JSON.stringify(bad));

  for (const ok of ['a', 'API_KEY', 'tls.crt', '-', '.', 'a'.repeat(128)]) assert.ok(validKey(ok), ok);
  for (const bad of ['', 'a b', 'a/b', 'a'.repeat(129), 'ключ']) assert.ok(!validKey(bad), JSON.stringify(bad));

  for (const ok of ['env', 'a', 'team_1', 'a-b', 'a'.repeat(63)]) assert.ok(validLabelKey(ok), ok);
  for (const bad of ['', 'Env', '1a', '_a', 'a.b', 'a'.repeat(64)]) assert.ok(!validLabelKey(bad), JSON.stringify(bad));

  for (const v of [undefined, null, 3, {}]) {
    assert.ok(!validName(v) && !validProject(v) && !validKey(v));
  }
});

test('requests carry the bearer token, JSON and a request id', async () => {
  const f = fakeFetch({ body: { subject: 'alice', projects: [{ name: 'payments', actions: ['secrets.list'] }] } });
  const projects = await client(f).projects();
  assert.deepEqual(projects, [{ name: 'payments', actions: ['secrets.list'] }]);
  const g = fakeFetch({ body: { subject: 'alice', projects } });
  assert.deepEqual(await client(g).account(), { subject: 'alice', projects });
  const [c] = f.calls;
  assert.equal(c.url, 'http://gw.test/v1/projects');
  assert.equal(c.init.method, 'GET');
  assert.equal(c.headers.Authorization, 'Bearer sgt_abc');
  assert.equal(c.headers.Accept, 'application/json');
  assert.match(c.headers['X-Request-Id'], /^[A-Za-z0-9._:-]{1,128}$/);
  assert.equal(c.headers['Content-Type'], undefined, 'no body, no content type');
  assert.equal(c.init.body, undefined);
  assert.equal(c.init.cache, 'no-store');
  assert.equal(c.init.redirect, 'error');
});

test('the token is required and never in a URL', async () => {
  assert.throws(() => new Client({ token: '' }), APIError);
  assert.throws(() => new Client({ token: '   ' }), /token/);
  assert.throws(() => new Client({ token: 'a b' }), /token/);
  assert.throws(() => new Client({ token: 'a\nb' }), /token/);
  const f = fakeFetch({ body: { secrets: [], next_page_token: '' } });
  await client(f).list('payments', { prefix: 'a' });
  assert.ok(!f.calls[0].url.includes('sgt_abc'));
});

test('list builds the query and maps paging', async () => {
  const f = fakeFetch(
    { body: { secrets: [meta({ name: 'a1' })], next_page_token: 'tok/2+=' } },
    { body: { secrets: [meta({ name: 'a2' })], next_page_token: '' } },
  );
  const c = client(f);
  const p1 = await c.list('payments', { prefix: 'a', pageSize: 1 });
  assert.deepEqual(p1.secrets.map((m) => m.name), ['a1']);
  assert.equal(p1.nextPageToken, 'tok/2+=');
  const p2 = await c.list('payments', { prefix: 'a', pageSize: 1, pageToken: p1.nextPageToken });
  assert.equal(p2.nextPageToken, '');
  assert.equal(f.calls[0].url, 'http://gw.test/v1/projects/payments/secrets?prefix=a&page_size=1');
  const u = new URL(f.calls[1].url);
  assert.equal(u.searchParams.get('page_token'), 'tok/2+=', 'the token is URL-encoded');
  assert.equal(u.searchParams.get('page_size'), '1');
});

test('listAll follows next_page_token to the end', async () => {
  const f = fakeFetch(
    { body: { secrets: [meta({ name: 'a' })], next_page_token: 't1' } },
    { body: { secrets: [], next_page_token: 't2' } }, // a filtered page may be empty
    { body: { secrets: [meta({ name: 'c' })], next_page_token: '' } },
  );
  const all = await client(f).listAll('payments');
  assert.deepEqual(all.map((m) => m.name), ['a', 'c']);
  assert.equal(f.calls.length, 3);
  assert.equal(f.calls[0].url, 'http://gw.test/v1/projects/payments/secrets');
});

test('bad names, prefixes and page sizes are refused before any request', async () => {
  const f = fakeFetch();
  const c = client(f);
  const refused = async (p, field) => {
    await assert.rejects(p, (e) => e instanceof APIError && e.code === 'invalid_argument' && e.status === 0 && e.message.startsWith(`invalid ${field}`));
  };
  await refused(c.list('Payments'), 'project');
  await refused(c.list('../x'), 'project');
  await refused(c.list('payments', { prefix: 'a/b' }), 'prefix');
  await refused(c.list('payments', { pageSize: 1001 }), 'page_size');
  await refused(c.list('payments', { pageSize: 1.5 }), 'page_size');
  await refused(c.metadata('payments', '../../v1/projects'), 'name');
  await refused(c.metadata('payments', 'a?b'), 'name');
  await refused(c.versions('payments', ''), 'name');
  await refused(c.create('payments', { name: 'ok', data: {} }), 'data');
  await refused(c.create('payments', { name: 'ok', data: { 'bad key': 'v' } }), 'data');
  await refused(c.create('payments', { name: 'ok', data: { k: 1 } }), 'data.k');
  await refused(c.create('payments', { name: 'ok', data: { k: 'v' }, labels: { Env: 'x' } }), 'labels');
  await refused(c.create('payments', { name: 'ok', data: { k: 'v' }, labels: { env: 'x'.repeat(64) } }), 'labels.env');
  await refused(c.create('payments', { name: '-x', data: { k: 'v' } }), 'name');
  await refused(c.replace('payments', 'db', { data: { k: 'v' } }, { ifMatchVersion: -1 }), 'If-Match');
  await refused(c.patch('payments', 'db', {}), 'body');
  await refused(c.patch('payments', 'db', { unset: ['a b'] }), 'unset');
  await refused(c.copy('payments', 'db', { toProject: 'Bad' }), 'to_project');
  await refused(c.copy('payments', 'db', { as: 'a.b' }), 'as');
  assert.equal(f.calls.length, 0, 'nothing was sent');
});

test('validation messages name keys, never values', async () => {
  const c = client(fakeFetch());
  await assert.rejects(c.create('payments', { name: 'x', data: { k: 'v'.repeat(3), 'bad key': 'SECRET-VALUE' } }), (e) => {
    assert.ok(!e.message.includes('SECRET-VALUE'));
    assert.ok(e.message.includes('bad key'));
    return true;
  });
});

test('metadata, versions', async () => {
  const f = fakeFetch({ body: meta({ version: 3 }), headers: { ETag: '"3"' } }, { body: { versions: [{ version: 1, created_at: 'x' }, { version: 2, created_at: 'y' }] } });
  const c = client(f);
  assert.equal((await c.metadata('payments', 'db')).version, 3);
  assert.deepEqual((await c.versions('payments', 'db')).map((v) => v.version), [1, 2]);
  assert.equal(f.calls[0].url, 'http://gw.test/v1/projects/payments/secrets/db/metadata');
  assert.equal(f.calls[1].url, 'http://gw.test/v1/projects/payments/secrets/db/versions');
});

test('create posts name, data and labels', async () => {
  const f = fakeFetch({ status: 201, body: meta({ labels: { env: 'dev' } }) }, { status: 201, body: meta() });
  const c = client(f);
  const m = await c.create('payments', { name: 'db', data: { user: 'app', password: 'pw' }, labels: { env: 'dev' } });
  assert.equal(m.version, 1);
  assert.equal(f.calls[0].init.method, 'POST');
  assert.equal(f.calls[0].url, 'http://gw.test/v1/projects/payments/secrets');
  assert.equal(f.calls[0].headers['Content-Type'], 'application/json');
  assert.deepEqual(f.calls[0].body, { name: 'db', data: { user: 'app', password: 'pw' }, labels: { env: 'dev' } });
  await c.create('payments', { name: 'db', data: { k: '' } });
  assert.deepEqual(f.calls[1].body, { name: 'db', data: { k: '' } }, 'no labels field when none; empty values are allowed');
});

test('replace sends PUT with If-Match from the version', async () => {
  const f = fakeFetch({ body: meta({ version: 4 }) }, { body: meta({ version: 5 }) });
  const c = client(f);
  const m = await c.replace('payments', 'db', { data: { a: '1' }, labels: {} }, { ifMatchVersion: 3 });
  assert.equal(m.version, 4);
  assert.equal(f.calls[0].init.method, 'PUT');
  assert.equal(f.calls[0].url, 'http://gw.test/v1/projects/payments/secrets/db');
  assert.equal(f.calls[0].headers['If-Match'], '"3"');
  assert.deepEqual(f.calls[0].body, { data: { a: '1' }, labels: {} });
  await c.replace('payments', 'db', { data: { a: '1' } });
  assert.equal(f.calls[1].headers['If-Match'], undefined);
  assert.deepEqual(f.calls[1].body, { data: { a: '1' } }, 'labels absent: kept');
});

test('patch sends set and unset', async () => {
  const f = fakeFetch({ body: meta({ version: 2 }) }, { body: meta({ version: 3 }) });
  const c = client(f);
  await c.patch('payments', 'db', { set: { token: 't' } });
  assert.equal(f.calls[0].init.method, 'PATCH');
  assert.deepEqual(f.calls[0].body, { set: { token: 't' } });
  assert.equal(f.calls[0].headers['If-Match'], undefined);
  await c.patch('payments', 'db', { unset: ['token'] }, { ifMatchVersion: 2 });
  assert.deepEqual(f.calls[1].body, { unset: ['token'] });
  assert.equal(f.calls[1].headers['If-Match'], '"2"');
});

test('patch can replace the labels alone', async () => {
  const f = fakeFetch({ body: meta({ version: 4 }) }, { body: meta({ version: 5 }) });
  const c = client(f);
  await c.patch('payments', 'db', { labels: { env: 'prod' } }, { ifMatchVersion: 3 });
  assert.deepEqual(f.calls[0].body, { labels: { env: 'prod' } });
  assert.equal(f.calls[0].headers['If-Match'], '"3"');
  await c.patch('payments', 'db', { labels: {} });
  assert.deepEqual(f.calls[1].body, { labels: {} }, '{} clears them');
  await assert.rejects(c.patch('payments', 'db', { labels: { 'Bad Key': 'x' } }), (e) => e.code === 'invalid_argument' && e.message.startsWith('invalid labels'));
  assert.equal(f.calls.length, 2, 'a bad label never reaches the wire');
});

test('delete sends If-Match and accepts 204', async () => {
  const f = fakeFetch({ status: 204 });
  await client(f).delete('payments', 'db', { ifMatchVersion: 7 });
  assert.equal(f.calls[0].init.method, 'DELETE');
  assert.equal(f.calls[0].headers['If-Match'], '"7"');
  assert.equal(f.calls[0].init.body, undefined);
});

test('copy posts to_project, as and overwrite', async () => {
  const f = fakeFetch({ status: 201, body: meta({ project: 'billing', name: 'db2' }) }, { status: 201, body: meta({ name: 'db-copy' }) });
  const c = client(f);
  const m = await c.copy('payments', 'db', { toProject: 'billing', as: 'db2', overwrite: true });
  assert.equal(m.project, 'billing');
  assert.equal(f.calls[0].url, 'http://gw.test/v1/projects/payments/secrets/db/copy');
  assert.deepEqual(f.calls[0].body, { to_project: 'billing', as: 'db2', overwrite: true });
  await c.copy('payments', 'db', { as: 'db-copy' });
  assert.deepEqual(f.calls[1].body, { as: 'db-copy' });
});

test('error envelopes become APIError with code, status, message and request id', async () => {
  const f = fakeFetch(
    { status: 412, body: { error: { code: 'version_mismatch', message: 'secret "db" is at version 4, not 3' } }, headers: { 'X-Request-Id': 'rid-412' } },
    { status: 401, body: { error: { code: 'unauthenticated', message: 'invalid bearer token' } }, headers: { 'X-Request-Id': 'rid-401' } },
    { status: 502, raw: '<html>bad gateway</html>' },
    { status: 200, raw: 'not json' },
    { throws: new TypeError('fetch failed') },
  );
  const c = client(f);
  await assert.rejects(c.replace('payments', 'db', { data: { a: 'b' } }, { ifMatchVersion: 3 }), (e) => {
    assert.ok(e instanceof APIError);
    assert.ok(e instanceof Error);
    assert.equal(e.status, 412);
    assert.equal(e.code, 'version_mismatch');
    assert.equal(e.message, 'secret "db" is at version 4, not 3');
    assert.equal(e.requestId, 'rid-412');
    return true;
  });
  await assert.rejects(c.projects(), { status: 401, code: 'unauthenticated', requestId: 'rid-401' });
  await assert.rejects(c.projects(), (e) => {
    assert.equal(e.status, 502);
    assert.equal(e.code, 'http_502');
    assert.match(e.message, /HTTP 502/);
    assert.equal(e.requestId, f.calls[2].headers['X-Request-Id'], 'falls back to the id it sent');
    return true;
  });
  await assert.rejects(c.projects(), { code: 'bad_response', status: 200 });
  await assert.rejects(c.projects(), (e) => {
    assert.equal(e.code, 'network');
    assert.equal(e.status, 0);
    assert.match(e.message, /could not be reached/);
    assert.ok(e.requestId);
    return true;
  });
});

test('names are URL-encoded in paths', async () => {
  // Valid names need no escaping, but the path is built with encodeURIComponent anyway.
  const f = fakeFetch({ body: meta({ name: 'A_b-9' }) });
  await client(f).metadata('p-1', 'A_b-9');
  assert.equal(f.calls[0].url, 'http://gw.test/v1/projects/p-1/secrets/A_b-9/metadata');
});

test('ifMatch formats versions', () => {
  assert.equal(ifMatch(3), '"3"');
  assert.throws(() => ifMatch(0), APIError);
  assert.throws(() => ifMatch('3'), APIError);
  assert.throws(() => ifMatch(1.5), APIError);
});

test('the client has no way to read values', () => {
  const c = client(fakeFetch());
  const methods = Object.getOwnPropertyNames(Client.prototype);
  for (const m of ['get', 'read', 'reveal', 'value', 'values']) assert.ok(!methods.includes(m), m);
  assert.equal(typeof c.metadata, 'function');
});

test('events opens the change stream: bearer token, Accept, Last-Event-ID, abort signal', async () => {
  const f = fakeFetch(
    { raw: 'id: 1\n', headers: { 'Content-Type': 'text/event-stream' } },
    { raw: '', headers: { 'Content-Type': 'text/event-stream; charset=utf-8' } },
  );
  const c = client(f);
  const ac = new AbortController();
  const resp = await c.events('payments', { signal: ac.signal });
  assert.equal(await resp.text(), 'id: 1\n', 'the body is left for the caller to read');
  await c.events('payments', { lastEventId: '42' });
  const [first, second] = f.calls;
  assert.equal(first.url, 'http://gw.test/v1/projects/payments/events');
  assert.equal(first.init.method, 'GET');
  assert.equal(first.headers.Authorization, 'Bearer sgt_abc');
  assert.equal(first.headers.Accept, 'text/event-stream');
  assert.equal(first.headers['Last-Event-ID'], undefined, 'no id: live from the next write');
  assert.equal(first.init.signal, ac.signal);
  assert.equal(first.init.cache, 'no-store');
  assert.equal(second.headers['Last-Event-ID'], '42');
  assert.ok(!first.url.includes('sgt_abc'));
});

test('events: refusals are APIErrors, a bad id or project is refused before any request', async () => {
  const f = fakeFetch(
    { status: 403, body: { error: { code: 'permission_denied', message: 'secrets.list is not granted' } }, headers: { 'X-Request-Id': 'r-1' } },
    { status: 200, body: { not: 'a stream' }, headers: { 'Content-Type': 'application/json' } },
    { throws: new TypeError('fetch failed') },
  );
  const c = client(f);
  await assert.rejects(c.events('payments'), (e) => e instanceof APIError && e.status === 403 && e.code === 'permission_denied' && e.requestId === 'r-1');
  await assert.rejects(c.events('payments'), (e) => e instanceof APIError && e.code === 'bad_response' && /event stream/.test(e.message));
  await assert.rejects(c.events('payments'), (e) => e instanceof APIError && e.code === 'network' && e.status === 0);
  for (const bad of ['-1', '1.5', 'x', '1\r\nX-Evil: 1']) {
    await assert.rejects(c.events('payments', { lastEventId: bad }), (e) => e.code === 'invalid_argument' && /Last-Event-ID/.test(e.message), bad);
  }
  await assert.rejects(c.events('Payments'), (e) => e.code === 'invalid_argument' && /project/.test(e.message));
  assert.equal(f.calls.length, 3);
});
