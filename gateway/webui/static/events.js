// events.js: reading a project's change stream (GET /v1/projects/{p}/events,
// docs/api.md "Change notifications") in the browser. No DOM.
//
// EventSource cannot send an Authorization header, and the UI holds its
// bearer token in JS (api.js), so the stream is read with fetch and a
// ReadableStream reader and parsed here, as the HTML standard parses event
// streams; LiveStream reconnects as EventSource would, with Last-Event-ID,
// plus backoff with jitter and a watchdog for connections that went silent.

/** maxLine bounds a line held while waiting for its end: a stream that never sends one is cut, not buffered forever. */
const maxLine = 1 << 20;

/**
 * SSEParser turns the text of an event stream, in chunks split anywhere
 * (inside a line, between CR and LF, inside a UTF-8 sequence), into events
 * {type, data, lastEventId}: data lines joined with "\n", comments (":")
 * skipped, type "message" when no "event:" line came.
 */
export class SSEParser {
  #decoder = new TextDecoder('utf-8', { ignoreBOM: true }); // the BOM is dropped below, once
  #started = false;
  #buf = '';
  #afterCR = false; // the last chunk ended with CR: a LF opening the next one ends no second line
  #data = [];
  #type = '';
  #id = '';

  /**
   * lastEventId starts as the id a resumed stream was opened with, so that a
   * comment or an empty event before the first id does not forget it.
   */
  constructor(onEvent, { lastEventId = '' } = {}) {
    this.onEvent = onEvent;
    this.#id = String(lastEventId);
    this.lastEventId = this.#id;
    this.retry = null; // milliseconds, once the server sent "retry:"
  }

  /** feed parses one chunk: a string, or bytes of UTF-8. */
  feed(chunk) {
    let text = typeof chunk === 'string' ? chunk : this.#decoder.decode(chunk, { stream: true });
    if (text === '') return;
    if (!this.#started) {
      this.#started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (this.#afterCR) {
      this.#afterCR = false;
      if (text[0] === '\n') text = text.slice(1);
    }
    const buf = this.#buf + text;
    const eol = /\r\n|\r|\n/g;
    let start = 0;
    let m;
    while ((m = eol.exec(buf))) {
      if (m[0] === '\r' && eol.lastIndex === buf.length) this.#afterCR = true;
      this.#line(buf.slice(start, m.index));
      start = eol.lastIndex;
    }
    this.#buf = buf.slice(start);
    if (this.#buf.length > maxLine) throw new Error(`the event stream sent a line longer than ${maxLine} characters`);
  }

  #line(line) {
    if (line === '') {
      this.#dispatch();
      return;
    }
    if (line[0] === ':') return; // a comment: the gateway's keep-alive
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    switch (field) {
      case 'event':
        this.#type = value;
        break;
      case 'data':
        this.#data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) this.#id = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
      default: // unknown fields are ignored, as the standard says
    }
  }

  #dispatch() {
    this.lastEventId = this.#id;
    const data = this.#data;
    const type = this.#type;
    this.#data = [];
    this.#type = '';
    if (data.length === 0) return;
    this.onEvent({ type: type || 'message', data: data.join('\n'), lastEventId: this.lastEventId });
  }
}

/**
 * fatal says whether a failure to open the stream would fail again however
 * often it is retried: a refused request (400), no valid token (401), no
 * permission or no binding (403, 404), a gateway without the route, or a
 * browser that cannot read a streamed answer. Others (network, 408, 429,
 * 5xx, a cut or silent stream) are retried.
 */
export function fatal(err) {
  if (!err) return false;
  if (err.fatal === true) return true;
  if (err.code === 'invalid_argument' && !err.status) return true;
  return [400, 401, 403, 404, 405, 410].includes(err.status);
}

/** jitter is a number in [0, 1) from the browser's CSPRNG when it has one. */
function jitter() {
  const c = globalThis.crypto;
  if (c && typeof c.getRandomValues === 'function') return c.getRandomValues(new Uint32Array(1))[0] / 2 ** 32;
  return Math.random();
}

/**
 * later is setTimeout that does not keep node alive (the unit tests run this
 * module under node, where a pending timer would hold the process open).
 */
export function later(fn, ms) {
  const t = setTimeout(fn, ms);
  if (t && typeof t.unref === 'function') t.unref();
  return t;
}

/**
 * LiveStream keeps one event stream open:
 *
 *   const s = new LiveStream({
 *     open: ({lastEventId, signal}) => client.events(project, {lastEventId, signal}),
 *     onEvent: (ev) => ...,          // {type, data, lastEventId}
 *     onState: (state, info) => ..., // see below
 *   });
 *   s.start(); ... s.stop();
 *
 * onError(err) hears of an onEvent that threw (the stream goes on).
 *
 * States: "connecting"; "open" ({resumed}: true when it was reopened with
 * a Last-Event-ID, so nothing was missed); "retrying" ({delay, error}) after
 * the stream failed or ended, before reopening; "stopped" ({error}) when
 * reopening cannot help (see fatal); "closed" after stop().
 *
 * Reopening sends the id of the last event seen as Last-Event-ID, after a
 * delay that doubles from minDelay to maxDelay (times a random factor in
 * [0.5, 1), so that the pages of a restarted gateway do not all come back
 * at once), and starts again from minDelay once a stream delivered
 * something. A stream silent for idleMs (the gateway sends a comment every
 * 15 s), or an opening not answered within idleMs, is taken for dead and
 * reopened. stop() then start() resumes from the last event seen.
 */
export class LiveStream {
  #open;
  #onEvent;
  #onState;
  #min;
  #max;
  #idleMs;
  #onError;
  #random;
  #run = null; // the current connection loop: {ac, idle, sleep, live}

  constructor({
    open,
    onEvent,
    onState = () => {},
    onError = (err) => console.error('secretgate: a live update failed:', err),
    lastEventId = '',
    minDelay = 1000,
    maxDelay = 30000,
    idleMs = 45000,
    random = jitter,
  }) {
    this.#open = open;
    this.#onEvent = onEvent;
    this.#onState = onState;
    this.#onError = onError;
    this.#min = minDelay;
    this.#max = maxDelay;
    this.#idleMs = idleMs;
    this.#random = random;
    this.lastEventId = String(lastEventId);
  }

  get running() {
    return this.#run !== null;
  }

  start() {
    if (this.#run) return;
    const run = { ac: null, idle: null, sleep: null, live: true };
    this.#run = run;
    this.#loop(run);
  }

  stop() {
    const run = this.#run;
    if (!run) return;
    this.#run = null;
    halt(run);
    this.#onState('closed', {});
  }

  /** delay is the wait before reopening after `failures` failures in a row. */
  delay(failures, base = this.#min) {
    const d = Math.min(this.#max, base * 2 ** Math.min(failures, 30));
    return Math.round(d * (0.5 + this.#random() / 2));
  }

  #watchdog(run) {
    clearTimeout(run.idle);
    const ac = run.ac;
    run.idle = later(() => ac.abort(new Error(`the event stream gave no sign of life for ${this.#idleMs} ms`)), this.#idleMs);
  }

  async #loop(run) {
    let failures = 0;
    let base = this.#min;
    while (run.live) {
      const ac = new AbortController();
      run.ac = ac;
      let error = null;
      this.#onState('connecting', {});
      // An answer that never comes is as dead as a stream gone silent.
      this.#watchdog(run);
      try {
        const resumed = this.lastEventId !== '';
        const resp = await this.#open({ lastEventId: this.lastEventId, signal: ac.signal });
        if (!run.live) {
          ac.abort();
          return;
        }
        if (!resp || !resp.body || typeof resp.body.getReader !== 'function') {
          throw Object.assign(new Error('this browser cannot read a streamed answer'), { fatal: true });
        }
        const parser = new SSEParser((ev) => {
          this.lastEventId = ev.lastEventId;
          if (!run.live) return;
          try {
            this.#onEvent(ev);
          } catch (err) {
            // A failing handler must not cost the stream (and the events after it).
            this.#onError(err);
          }
        }, { lastEventId: this.lastEventId });
        this.#watchdog(run);
        this.#onState('open', { resumed });
        const reader = resp.body.getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (!run.live) {
            ac.abort();
            return;
          }
          if (done) break;
          failures = 0;
          this.#watchdog(run);
          parser.feed(value);
          this.lastEventId = parser.lastEventId;
          if (parser.retry !== null) base = Math.max(parser.retry, 1);
        }
      } catch (err) {
        error = err;
      }
      clearTimeout(run.idle);
      if (!run.live) return;
      if (fatal(error)) {
        run.live = false;
        if (this.#run === run) this.#run = null;
        this.#onState('stopped', { error });
        return;
      }
      const delay = this.delay(failures++, base);
      this.#onState('retrying', { delay, error });
      await new Promise((wake) => {
        run.sleep = { timer: later(wake, delay), wake };
      });
      run.sleep = null;
    }
  }
}

/** halt ends a connection loop: its stream, its watchdog, its wait. */
function halt(run) {
  run.live = false;
  clearTimeout(run.idle);
  if (run.ac) run.ac.abort();
  if (run.sleep) {
    clearTimeout(run.sleep.timer);
    run.sleep.wake();
  }
}
