// Unit tests of static/events.js: the event stream parser, and LiveStream's
// reconnection (Last-Event-ID, backoff, watchdog, stop) on a fake server
// and node's mock timers.
import test from 'node:test';
import assert from 'node:assert/strict';

import { LiveStream, SSEParser, fatal } from '../static/events.js';

const settle = async () => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
};

function parseAll(chunks, opts) {
  const out = [];
  const p = new SSEParser((ev) => out.push(ev), opts);
  for (const c of chunks) p.feed(c);
  return { events: out, parser: p };
}

// A stream with every case of the standard the gateway or a proxy could
// produce: a byte order mark, comments, LF, CR LF and CR line ends, data on
// several lines, a field without a colon, one leading space stripped (only
// one), an id kept across events, an event with no data (not delivered),
// an id holding NUL (ignored), an unknown field, retry, and UTF-8 beyond
// ASCII.
const STREAM =
  '\ufeff: keep-alive\n\n' +
  'id: 7\nevent: secret.updated\ndata: {"project":"p","name":"db","version":3,"index":7}\n\n' +
  'id: 8\r\nevent: secret.created\r\ndata: line one\r\ndata:  two spaces\r\ndata\r\n\r\n' +
  'data: no id, so the last one stays\rdata: é🔑\r\r' +
  'id: 9\nevent: ignored\n\n' +
  'id: 1\u00002\nunknown: x\nretry: 2500\nretry: soon\ndata: after\n\n' +
  ': the end\ndata: unterminated';

const EXPECTED = [
  { type: 'secret.updated', data: '{"project":"p","name":"db","version":3,"index":7}', lastEventId: '7' },
  { type: 'secret.created', data: 'line one\n two spaces\n', lastEventId: '8' },
  { type: 'message', data: 'no id, so the last one stays\né🔑', lastEventId: '8' },
  { type: 'message', data: 'after', lastEventId: '9' },
];

test('SSEParser: the same events however the stream is cut into chunks', () => {
  const bytes = new TextEncoder().encode(STREAM);
  const whole = parseAll([STREAM]);
  assert.deepEqual(whole.events, EXPECTED);
  assert.equal(whole.parser.lastEventId, '9');
  assert.equal(whole.parser.retry, 2500);

  assert.deepEqual(parseAll([...STREAM]).events, EXPECTED, 'one character at a time');
  assert.deepEqual(parseAll([...bytes].map((b) => Uint8Array.of(b))).events, EXPECTED, 'one byte at a time (inside UTF-8 sequences too)');
  for (let i = 0; i <= bytes.length; i++) {
    assert.deepEqual(parseAll([bytes.slice(0, i), bytes.slice(i)]).events, EXPECTED, `cut at byte ${i}`);
  }
  for (let i = 0; i <= STREAM.length; i++) {
    for (const j of [i + 1, i + 2, i + 5]) {
      assert.deepEqual(parseAll([STREAM.slice(0, i), STREAM.slice(i, j), STREAM.slice(j)]).events, EXPECTED, `cut at ${i} and ${j}`);
    }
  }
});

test('SSEParser: CR LF cut between two chunks is one line break', () => {
  const { events } = parseAll(['data: a\r', '\ndata: b\r', '\n\r', '\n']);
  assert.deepEqual(events, [{ type: 'message', data: 'a\nb', lastEventId: '' }]);
  // A CR alone at the end of a chunk ends its line; what follows is a new one.
  assert.deepEqual(parseAll(['data: a\r', 'data: b\r', '\r']).events, [{ type: 'message', data: 'a\nb', lastEventId: '' }]);
});

test('SSEParser: a resumed stream keeps its id through comments and blank lines', () => {
  const { events, parser } = parseAll([': keep-alive\n\n', '\n\n'], { lastEventId: '41' });
  assert.deepEqual(events, []);
  assert.equal(parser.lastEventId, '41');
  const next = parseAll([': keep-alive\n\n', 'id: 42\ndata: x\n\n'], { lastEventId: '41' });
  assert.equal(next.events[0].lastEventId, '42');
});

test('SSEParser: only one byte order mark is dropped, and an endless line is refused', () => {
  assert.deepEqual(parseAll(['\ufeff\ufeffdata: x\n\n']).events, [], 'a second BOM makes the field name "\\ufeffdata", unknown');
  const p = new SSEParser(() => {});
  assert.throws(() => p.feed('data: ' + 'x'.repeat(1 << 20)), /longer than/);
});

test('fatal: what reopening cannot mend', () => {
  for (const status of [400, 401, 403, 404]) assert.ok(fatal({ status }), String(status));
  for (const status of [0, 408, 429, 500, 502, 503]) assert.ok(!fatal({ status }), String(status));
  assert.ok(!fatal(new TypeError('fetch failed')));
  assert.ok(!fatal(null));
});

/**
 * fakeServer answers LiveStream's open() with streams the test writes to;
 * calls records each open's Last-Event-ID and signal.
 */
function fakeServer() {
  const calls = [];
  const answers = [];
  const open = async ({ lastEventId, signal }) => {
    const call = { lastEventId, signal };
    calls.push(call);
    const a = answers.shift();
    if (a && a.error) throw a.error;
    const enc = new TextEncoder();
    const body = new ReadableStream({
      start(controller) {
        call.push = (text) => controller.enqueue(enc.encode(text));
        call.end = () => controller.close();
        signal.addEventListener('abort', () => {
          call.aborted = true;
          controller.error(signal.reason);
        });
      },
    });
    return new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
  };
  return { calls, answers, open };
}

function watch(server, opts = {}) {
  const events = [];
  const states = [];
  const s = new LiveStream({
    open: server.open,
    onEvent: (ev) => events.push(ev),
    onState: (kind, info) => states.push({ kind, ...info }),
    random: () => 0, // delays at half their cap: exact figures to check
    ...opts,
  });
  return { s, events, states };
}

test('LiveStream: reopens with Last-Event-ID after the stream ends, with doubling delays reset by data', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const srv = fakeServer();
  const { s, events, states } = watch(srv);
  s.start();
  await settle();
  assert.equal(srv.calls.length, 1);
  assert.equal(srv.calls[0].lastEventId, '', 'the first open has no id');
  assert.deepEqual(states.map((x) => x.kind), ['connecting', 'open']);
  assert.equal(states[1].resumed, false);

  srv.calls[0].push('id: 5\nevent: secret.updated\ndata: {"name":"a"}\n\n');
  await settle();
  assert.deepEqual(events.map((e) => e.lastEventId), ['5']);
  srv.calls[0].end();
  await settle();
  assert.deepEqual(states.at(-1), { kind: 'retrying', delay: 500, error: null }, 'after data, the first delay: 1000 ms × 0.5');
  t.mock.timers.tick(499);
  await settle();
  assert.equal(srv.calls.length, 1, 'not before the delay');
  t.mock.timers.tick(1);
  await settle();
  assert.equal(srv.calls.length, 2);
  assert.equal(srv.calls[1].lastEventId, '5', 'resumes after the last event seen');
  assert.equal(states.at(-1).resumed, true);

  // Streams that end without a byte: the delay doubles (this reopening
  // counts as the first failure), up to maxDelay × 0.5.
  const delays = [];
  for (let i = 0; i < 7; i++) {
    srv.calls.at(-1).end();
    await settle();
    delays.push(states.at(-1).delay);
    t.mock.timers.tick(states.at(-1).delay);
    await settle();
  }
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 15000, 15000, 15000]);
  assert.ok(srv.calls.every((c, i) => i === 0 || c.lastEventId === '5'));

  // A byte of data (a keep-alive) starts the delays again from the first.
  srv.calls.at(-1).push(': keep-alive\n\n');
  await settle();
  srv.calls.at(-1).end();
  await settle();
  assert.equal(states.at(-1).delay, 500);
  s.stop();
});

test('LiveStream: the jitter keeps each delay within [half, all] of its cap', () => {
  for (const r of [0, 0.25, 0.999999]) {
    const s = new LiveStream({ open: async () => null, onEvent: () => {}, random: () => r });
    for (let f = 0; f < 8; f++) {
      const cap = Math.min(30000, 1000 * 2 ** f);
      const d = s.delay(f);
      assert.ok(d >= cap / 2 && d <= cap, `failure ${f}, random ${r}: ${d} within [${cap / 2}, ${cap}]`);
    }
  }
});

test('LiveStream: refusals stop it, failures of the network or the gateway are retried', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  for (const status of [401, 403, 404]) {
    const srv = fakeServer();
    srv.answers.push({ error: Object.assign(new Error('refused'), { status }) });
    const { s, states } = watch(srv);
    s.start();
    await settle();
    assert.equal(states.at(-1).kind, 'stopped', String(status));
    assert.equal(states.at(-1).error.status, status);
    assert.equal(s.running, false);
    t.mock.timers.tick(60000);
    await settle();
    assert.equal(srv.calls.length, 1, `${status}: not retried`);
  }
  const srv = fakeServer();
  srv.answers.push({ error: Object.assign(new Error('unavailable'), { status: 503 }) }, { error: new TypeError('fetch failed') });
  const { s, states } = watch(srv);
  s.start();
  await settle();
  assert.equal(states.at(-1).kind, 'retrying');
  t.mock.timers.tick(500);
  await settle();
  assert.equal(states.at(-1).kind, 'retrying');
  assert.equal(states.at(-1).delay, 1000);
  t.mock.timers.tick(1000);
  await settle();
  assert.equal(srv.calls.length, 3);
  assert.equal(states.at(-1).kind, 'open');
  s.stop();
});

test('LiveStream: a silent stream is taken for dead and reopened; comments keep it alive', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const srv = fakeServer();
  const { s, states } = watch(srv, { idleMs: 45000 });
  s.start();
  await settle();
  srv.calls[0].push('id: 3\ndata: x\n\n');
  await settle();
  t.mock.timers.tick(30000);
  srv.calls[0].push(': keep-alive\n\n');
  await settle();
  t.mock.timers.tick(30000);
  await settle();
  assert.ok(!srv.calls[0].aborted, 'a comment 30 s ago: alive');
  t.mock.timers.tick(15000);
  await settle();
  assert.ok(srv.calls[0].aborted, '45 s without a byte: cut');
  assert.equal(states.at(-1).kind, 'retrying');
  t.mock.timers.tick(states.at(-1).delay);
  await settle();
  assert.equal(srv.calls.length, 2);
  assert.equal(srv.calls[1].lastEventId, '3');
  s.stop();
});

test('LiveStream: stop closes the stream for good; start resumes from the last event', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const srv = fakeServer();
  const { s, events, states } = watch(srv);
  s.start();
  await settle();
  srv.calls[0].push('id: 12\nevent: secret.deleted\ndata: {}\n\n');
  await settle();
  s.stop();
  await settle();
  assert.ok(srv.calls[0].aborted, 'the request is aborted');
  assert.equal(states.at(-1).kind, 'closed');
  t.mock.timers.tick(120000);
  await settle();
  assert.equal(srv.calls.length, 1, 'no reconnection after stop');

  // Stopped while waiting to reopen: the wait ends, nothing reopens.
  s.start();
  await settle();
  assert.equal(srv.calls[1].lastEventId, '12');
  assert.equal(states.at(-1).resumed, true);
  srv.calls[1].end();
  await settle();
  s.stop();
  t.mock.timers.tick(120000);
  await settle();
  assert.equal(srv.calls.length, 2);
  assert.equal(events.length, 1);
});

test('LiveStream: a handler that throws costs neither the stream nor the next events', async () => {
  const srv = fakeServer();
  const seen = [];
  const reported = [];
  const s = new LiveStream({
    open: srv.open,
    onEvent: (ev) => {
      seen.push(ev.data);
      if (ev.data === 'bad') throw new Error('handler bug');
    },
    onError: (err) => reported.push(err.message),
  });
  s.start();
  await settle();
  srv.calls[0].push('data: bad\n\ndata: good\n\n');
  await settle();
  s.stop();
  assert.deepEqual(seen, ['bad', 'good']);
  assert.deepEqual(reported, ['handler bug'], 'the bug is reported, not swallowed');
  assert.equal(srv.calls.length, 1);
});
