// fakegateway.mjs: an in-memory stand-in of the gateway's HTTP API, as a
// fetch function, for the app.js tests. It follows the README's shapes
// (metadata, paging, ETag/If-Match, error envelope, X-Request-Id) closely
// enough to drive the UI; the real gateway is covered by e2e.mjs.

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
  }

  put(project, name, data, labels = {}) {
    const now = this.#now();
    this.secrets.set(`${project}/${name}`, { project, name, data: { ...data }, labels: { ...labels }, versions: [{ version: 1, created_at: now }], created_at: now });
  }

  /** bump writes a new version behind the UI's back (another writer). */
  bump(project, name) {
    const s = this.secrets.get(`${project}/${name}`);
    s.versions.push({ version: s.versions.length + 1, created_at: this.#now() });
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

    if (u.pathname === '/v1/projects' && req.method === 'GET') {
      const projects = Object.keys(grants).sort().map((name) => ({ name, actions: ACTIONS[grants[name]] }));
      return answer(200, { subject: auth[1].replace(/^tok-/, ''), projects });
    }
    const m = /^\/v1\/projects\/([^/]+)\/secrets(?:\/([^/]+)(?:\/(metadata|versions|copy))?)?$/.exec(u.pathname);
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
      sec.versions.push({ version: sec.versions.length + 1, created_at: this.#now() });
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
        return answer(201, this.meta(this.secrets.get(k)), { ETag: '"1"' });
      }
      case 'GET one ':
        return error(500, 'internal', 'the UI must never read values');
      case 'GET one metadata':
        if (!s) return error(404, 'not_found', `secret "${name}" not found`);
        return answer(200, this.meta(s), { ETag: `"${latest}"` });
      case 'GET one versions':
        if (!s) return error(404, 'not_found', `secret "${name}" not found`);
        return answer(200, { versions: s.versions });
      case 'PUT one ':
        if (!can(project, 'secrets.update')) return deny('secrets.update');
        if (!s) return error(404, 'not_found', `secret "${name}" not found`);
        if (ifMatch && ifMatch !== latest) return mismatch();
        write(s, body.data, body.labels);
        return answer(200, this.meta(s));
      case 'PATCH one ': {
        if (!can(project, 'secrets.update')) return deny('secrets.update');
        if (!s) return error(404, 'not_found', `secret "${name}" not found`);
        if (ifMatch && ifMatch !== latest) return mismatch();
        const data = { ...s.data, ...(body.set || {}) };
        for (const k of body.unset || []) delete data[k];
        if (Object.keys(data).length === 0) return error(400, 'invalid_argument', 'invalid unset: would remove every key');
        write(s, data, body.labels);
        return answer(200, this.meta(s));
      }
      case 'DELETE one ':
        if (!can(project, 'secrets.delete')) return deny('secrets.delete');
        if (!s) return error(404, 'not_found', `secret "${name}" not found`);
        if (ifMatch && ifMatch !== latest) return mismatch();
        this.secrets.delete(key);
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
          return answer(200, this.meta(t));
        }
        this.put(to, as, s.data, s.labels);
        return answer(201, this.meta(this.secrets.get(`${to}/${as}`)));
      }
      default:
        return error(404, 'not_found', 'no such route');
    }
  }
}
