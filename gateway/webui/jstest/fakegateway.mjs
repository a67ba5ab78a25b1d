// fakegateway.mjs: an in-memory stand-in of the gateway's HTTP API, as a
// fetch function, for the app.js tests. It follows the README's shapes
// (metadata, paging, ETag/If-Match, error envelope, X-Request-Id) closely
// enough to drive the UI; the real gateway is covered by e2e.mjs.
// It streams change events as docs/api.md "Change notifications" says
// (ids per project, Last-Event-ID resumes or answers resync), cutting its
// output into small chunks so that the UI's parser meets lines split
// across reads.

const ACTIONS = {
  admin: ['secrets.list', 'secrets.read', 'secrets.create', 'secrets.update', 'secrets.delete', 'project.migrate'],
  editor: ['secrets.list', 'secrets.create', 'secrets.update', 'secrets.delete'],
  reader: ['secrets.list', 'secrets.read'],
  viewer: ['secrets.list'],
};

export class FakeGateway {
  /**
   * tokens: {token: {project: role}}; every project named there exists.
   */
  constructor(tokens) {
    this.tokens = tokens;
    this.secrets = new Map(); // "project/name" -> {project, name, data, labels, versions: [{version, created_at}]}
    this.requests = []; // {method, path, query, headers, body, raw}: raw is the body as sent
    this.failNext = null; // {status, code, message}: the next request answers this
    this.seq = 0;
    this.clock = Date.UTC(2025, 5, 1, 10, 0, 0);
    this.fetch = this.fetch.bind(this);
    this.logs = new Map(); // project -> {last, events: [{index, kind, name, version}]}
    this.logSize = 1024; // events kept per project, as the gateway
    this.streams = new Set(); // open event streams: {project, push, end}
    this.chunk = 7; // bytes per chunk of a stream
    this.noEvents = false; // true: a gateway from before the event stream (404)
    // gate, while set, holds back the answers of writes (their events go
    // out at once): the gateway publishes before it answers, so a watcher
    // may hear of a write before its writer does. See holdWrites.
    this.gate = null;
    this.stallEvents = false; // true: an event stream's request gets no answer (a proxy holding it)
    this.unserved = new Set(); // versions the backend no longer serves: ?keys=true leaves them without keys
  }

  /** emit appends an event to a project's log and sends it to its open streams. */
  emit(project, kind, name, version) {
    const log = this.logs.get(project) || { last: 0, events: [] };
    this.logs.set(project, log);
    log.last++;
    const ev = { index: log.last, kind, name, version };
    log.events.push(ev);
    if (log.events.length > this.logSize) log.events.shift();
    for (const st of this.streams) if (st.project === project) st.push(sse(project, ev));
  }

  /** write is another person's create or replace, through the gateway: it emits. */
  write(project, name, data, labels = {}) {
    const s = this.secrets.get(`${project}/${name}`);
    if (s) {
      s.data = { ...data };
      s.labels = { ...labels };
      s.versions.push({ version: s.versions.length + 1, created_at: this.#now(), data: { ...data } });
      this.emit(project, 'secret.updated', name, s.versions.length);
    } else {
      this.put(project, name, data, labels);
      this.emit(project, 'secret.created', name, 1);
    }
  }

  /** remove is another person's delete, through the gateway: it emits. */
  remove(project, name) {
    this.secrets.delete(`${project}/${name}`);
    this.emit(project, 'secret.deleted', name, 0);
  }

  /** resync sends resync to a project's streams, as a migration switch does. */
  resync(project) {
    this.emit(project, 'resync', '', 0);
  }

  /** cut ends every open stream, as a gateway restart or a proxy would. */
  cut() {
    for (const st of [...this.streams]) st.end();
  }

  /** restart forgets every log (indexes start again at 1) and ends the streams. */
  restart() {
    this.logs.clear();
    this.cut();
  }

  /** comment sends a comment line (a keep-alive) to every open stream. */
  comment(text = 'keep-alive') {
    for (const st of this.streams) st.push(`: ${text}\n\n`);
  }

  streamsOf(project) {
    return [...this.streams].filter((st) => st.project === project).length;
  }

  #events(project, lastEventId, signal) {
    const log = this.logs.get(project) || { last: 0, events: [] };
    let first = '';
    if (lastEventId !== undefined) {
      const n = Number(lastEventId);
      const oldest = log.events.length ? log.events[0].index : log.last + 1;
      if (n > log.last || n < oldest - 1) first = sse(project, { index: log.last, kind: 'resync', name: '', version: 0 });
      else first = log.events.filter((e) => e.index > n).map((e) => sse(project, e)).join('');
    }
    const enc = new TextEncoder();
    const st = { project };
    const body = new ReadableStream({
      start: (controller) => {
        st.push = (text) => {
          const bytes = enc.encode(text);
          for (let i = 0; i < bytes.length; i += this.chunk) controller.enqueue(bytes.slice(i, i + this.chunk));
        };
        st.end = () => {
          this.streams.delete(st);
          controller.close();
        };
        if (signal) {
          signal.addEventListener('abort', () => {
            if (!this.streams.delete(st)) return;
            controller.error(signal.reason || new DOMException('The operation was aborted.', 'AbortError'));
          });
        }
      },
    });
    this.streams.add(st);
    if (first) st.push(first);
    return body;
  }

  put(project, name, data, labels = {}) {
    const now = this.#now();
    this.secrets.set(`${project}/${name}`, { project, name, data: { ...data }, labels: { ...labels }, versions: [{ version: 1, created_at: now, data: { ...data } }], created_at: now });
  }

  /** bump writes a new version behind the UI's back (another writer, through the gateway: it emits). */
  bump(project, name) {
    const s = this.secrets.get(`${project}/${name}`);
    s.versions.push({ version: s.versions.length + 1, created_at: this.#now(), data: { ...s.data } });
    this.emit(project, 'secret.updated', name, s.versions.length);
  }

  #now() {
    this.clock += 1000;
    return new Date(this.clock).toISOString();
  }

  meta(s) {
    const last = s.versions[s.versions.length - 1];
    return {
      project: s.project,
      name: s.name,
      keys: Object.keys(s.data).sort(),
      version: last.version,
      labels: { ...s.labels },
      created_at: s.created_at,
      updated_at: last.created_at,
    };
  }

  async fetch(url, init = {}) {
    const resp = await this.#handle(url, init);
    if (this.gate && !['GET', 'HEAD', undefined].includes(init.method)) await this.gate;
    return resp;
  }

  /** holdWrites holds back the answers of writes until the function it returns is called. */
  holdWrites() {
    let release;
    this.gate = new Promise((r) => {
      release = r;
    });
    return () => {
      this.gate = null;
      release();
    };
  }

  async #handle(url, init) {
    const u = new URL(url, 'http://ui.test');
    const headers = Object.fromEntries(Object.entries(init.headers || {}).map(([k, v]) => [k.toLowerCase(), v]));
    const body = init.body === undefined ? undefined : JSON.parse(init.body);
    const req = { method: init.method || 'GET', path: u.pathname, query: Object.fromEntries(u.searchParams), headers, body, raw: init.body };
    this.requests.push(req);
    const rid = headers['x-request-id'] || `fake-${++this.seq}`;
    const answer = (status, json, extra = {}) =>
      new Response(status === 204 ? null : JSON.stringify(json), {
        status,
        headers: { 'Content-Type': 'application/json; charset=utf-8', 'X-Request-Id': rid, ...extra },
      });
    const error = (status, code, message) => answer(status, { error: { code, message } });

    if (this.failNext) {
      const f = this.failNext;
      this.failNext = null;
      return error(f.status, f.code, f.message);
    }
    const auth = /^Bearer (\S+)$/.exec(headers.authorization || '');
    const grants = auth && this.tokens[auth[1]];
    if (!grants) return error(401, 'unauthenticated', 'invalid bearer token');
    const can = (project, action) => (ACTIONS[grants[project]] || []).includes(action);

    const ev = /^\/v1\/projects\/([^/]+)\/events$/.exec(u.pathname);
    if (ev && req.method === 'GET' && !this.noEvents) {
      const project = decodeURIComponent(ev[1]);
      if (!grants[project]) return error(404, 'not_found', `project "${project}" not found`);
      if (!can(project, 'secrets.list')) return error(403, 'permission_denied', 'secrets.list is not granted');
      if (init.signal && init.signal.aborted) throw new DOMException('The operation was aborted.', 'AbortError');
      if (this.stallEvents) {
        return new Promise((_, reject) => {
          if (init.signal) init.signal.addEventListener('abort', () => reject(new DOMException('The operation was aborted.', 'AbortError')));
        });
      }
      const last = headers['last-event-id'];
      if (last !== undefined && !/^\d+$/.test(last)) return error(400, 'invalid_argument', 'invalid Last-Event-ID');
      return new Response(this.#events(project, last, init.signal), {
        status: 200,
        headers: { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', 'X-Request-Id': rid },
      });
    }
    if (u.pathname === '/v1/projects' && req.method === 'GET') {
      const projects = Object.keys(grants).sort().map((name) => ({ name, actions: ACTIONS[grants[name]] }));
      return answer(200, { subject: auth[1].replace(/^tok-/, ''), projects });
    }
    const m = /^\/v1\/projects\/([^/]+)\/secrets(?:\/([^/]+)(?:\/(metadata|versions|copy|rollback))?)?$/.exec(u.pathname);
    if (!m) return error(404, 'not_found', 'no such route');
    const project = decodeURIComponent(m[1]);
    const name = m[2] && decodeURIComponent(m[2]);
    const sub = m[3] || '';
    if (!grants[project]) return error(404, 'not_found', `project "${project}" not found`);
    const deny = (action) => error(403, 'permission_denied', `${action} on secret "${name || ''}" in project "${project}" is not granted`);
    const key = `${project}/${name}`;
    const s = name ? this.secrets.get(key) : null;
    const latest = s ? s.versions[s.versions.length - 1].version : 0;
    const ifMatch = headers['if-match'] ? Number(headers['if-match'].replace(/"/g, '')) : 0;
    const mismatch = () => error(412, 'version_mismatch', `secret "${name}" is at version ${latest}, not ${ifMatch}`);
    const write = (sec, data, labels) => {
      sec.data = { ...data };
      if (labels !== undefined) sec.labels = { ...labels };
      sec.versions.push({ version: sec.versions.length + 1, created_at: this.#now(), data: { ...data } });
    };

    switch (`${req.method} ${name ? 'one' : 'all'} ${sub}`) {
      case 'GET all ': {
        if (!can(project, 'secrets.list')) return deny('secrets.list');
        const prefix = u.searchParams.get('prefix') || '';
        const size = Number(u.searchParams.get('page_size') || 100);
        const from = Number(u.searchParams.get('page_token') || 0);
        const all = [...this.secrets.values()].filter((x) => x.project === project && x.name.startsWith(prefix)).sort((a, b) => (a.name < b.name ? -1 : 1));
        const page = all.slice(from, from + size);
        return answer(200, { secrets: page.map((x) => this.meta(x)), next_page_token: from + size < all.length ? String(from + size) : '' });
      }
      case 'POST all ': {
        if (!can(project, 'secrets.create')) return deny('secrets.create');
        const k = `${project}/${body.name}`;
        if (this.secrets.has(k)) return error(409, 'already_exists', `secret "${body.name}" already exists`);
        this.put(project, body.name, body.data, body.labels || {});
        this.emit(project, 'secret.created', body.name, 1);
        return answer(201, this.meta(this.secrets.get(k)), { ETag: '"1"' });
      }
      case 'GET one ':
        return error(500, 'internal', 'the UI must never read values');
      case 'GET one metadata':
        if (!s) return error(404, 'not_found', `secret "${name}" not found`);
        return answer(200, this.meta(s), { ETag: `"${latest}"` });
      case 'GET one versions': {
        if (!s) return error(404, 'not_found', `secret "${name}" not found`);
        // As the gateway: the key names of the newest 20 with ?keys=true, never a value.
        const keys = u.searchParams.get('keys') === 'true';
        const from = s.versions.length - 20;
        return answer(200, {
          versions: s.versions.map((v, i) => ({
            version: v.version,
            created_at: v.created_at,
            ...(keys && i >= from && !this.unserved.has(v.version) ? { keys: Object.keys(v.data).sort() } : {}),
          })),
        });
      }
      case 'POST one rollback': {
        if (!can(project, 'secrets.update')) return deny('secrets.update');
        if (!s) return error(404, 'not_found', `secret "${name}" not found`);
        const old = s.versions.find((v) => v.version === body.version);
        if (!old) return error(404, 'not_found', `version ${body.version} of secret "${name}" not found`);
        if (ifMatch && ifMatch !== latest) return mismatch();
        write(s, old.data);
        this.emit(project, 'secret.updated', name, s.versions.length);
        return answer(200, this.meta(s));
      }
      case 'PUT one ':
        if (!can(project, 'secrets.update')) return deny('secrets.update');
        if (!s) return error(404, 'not_found', `secret "${name}" not found`);
        if (ifMatch && ifMatch !== latest) return mismatch();
        write(s, body.data, body.labels);
        this.emit(project, 'secret.updated', name, s.versions.length);
        return answer(200, this.meta(s));
      case 'PATCH one ': {
        if (!can(project, 'secrets.update')) return deny('secrets.update');
        if (!s) return error(404, 'not_found', `secret "${name}" not found`);
        if (ifMatch && ifMatch !== latest) return mismatch();
        const data = { ...s.data, ...(body.set || {}) };
        for (const k of body.unset || []) delete data[k];
        if (Object.keys(data).length === 0) return error(400, 'invalid_argument', 'invalid unset: would remove every key');
        write(s, data, body.labels);
        this.emit(project, 'secret.updated', name, s.versions.length);
        return answer(200, this.meta(s));
      }
      case 'DELETE one ':
        if (!can(project, 'secrets.delete')) return deny('secrets.delete');
        if (!s) return error(404, 'not_found', `secret "${name}" not found`);
        if (ifMatch && ifMatch !== latest) return mismatch();
        this.secrets.delete(key);
        this.emit(project, 'secret.deleted', name, 0);
        return answer(204);
      case 'POST one copy': {
        if (!s) return error(404, 'not_found', `secret "${name}" not found`);
        if (!can(project, 'secrets.read') && !can(project, 'project.migrate')) return deny('secrets.read');
        const to = body.to_project || project;
        const as = body.as || name;
        if (!grants[to]) return error(404, 'not_found', `project "${to}" not found`);
        if (!can(to, 'secrets.create')) return deny('secrets.create');
        const t = this.secrets.get(`${to}/${as}`);
        if (t && !body.overwrite) return error(409, 'already_exists', `secret "${as}" already exists in project "${to}"`);
        if (t) {
          write(t, s.data, s.labels);
          this.emit(to, 'secret.updated', as, t.versions.length);
          return answer(200, this.meta(t));
        }
        this.put(to, as, s.data, s.labels);
        this.emit(to, 'secret.created', as, 1);
        return answer(201, this.meta(this.secrets.get(`${to}/${as}`)));
      }
      default:
        return error(404, 'not_found', 'no such route');
    }
  }
}

/** sse renders one event as the gateway does (gateway/events.go). */
function sse(project, e) {
  const data = e.kind === 'resync' ? { project, index: e.index } : { project, name: e.name, version: e.version, index: e.index };
  return `id: ${e.index}\nevent: ${e.kind}\ndata: ${JSON.stringify(data)}\n\n`;
}
