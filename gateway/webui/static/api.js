// api.js: a small client of the secretgate HTTP API, for the web UI and for
// scripts. It touches no DOM, so it runs in browsers and in node alike.
//
// Deliberately, it has no method that reads secret values
// (GET /v1/projects/{p}/secrets/{name}): values are write-only for people,
// and the UI built on this module cannot show what it cannot fetch.

// The model's name rules, the same as sdk/charset.go (and README "Concepts").
export const patterns = Object.freeze({
  project: /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/,
  name: /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/,
  prefix: /^[A-Za-z0-9_-]{1,128}$/,
  key: /^[A-Za-z0-9_.-]{1,128}$/,
  labelKey: /^[a-z][a-z0-9_-]{0,62}$/,
});

export const limits = Object.freeze({
  maxKeys: 100,
  maxLabels: 64,
  maxLabelValueChars: 63,
  maxPageSize: 1000,
});

const isString = (s) => typeof s === 'string';
export const validProject = (s) => isString(s) && patterns.project.test(s);
export const validName = (s) => isString(s) && patterns.name.test(s);
export const validPrefix = (s) => isString(s) && patterns.prefix.test(s);
export const validKey = (s) => isString(s) && patterns.key.test(s);
export const validLabelKey = (s) => isString(s) && patterns.labelKey.test(s);

// Messages of the same wording as the gateway's, naming the field only.
const rules = {
  project: "must be 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit",
  name: "must be 1-128 characters of A-Z, a-z, 0-9, '_' and '-', starting with a letter or digit",
  prefix: "must be a name prefix: characters of A-Z, a-z, 0-9, '_' and '-'",
  key: "must be 1-128 characters of A-Z, a-z, 0-9, '_', '.' and '-'",
  labelKey: 'must match ^[a-z][a-z0-9_-]{0,62}$',
};

/**
 * APIError is every failure of this client: an answer of the gateway
 * (status, code and message from its error envelope, requestId from
 * X-Request-Id), a request refused before sending (status 0, code
 * "invalid_argument"), or a network failure (status 0, code "network").
 */
export class APIError extends Error {
  constructor({ status = 0, code = 'unknown', message = '', requestId = '' } = {}) {
    super(message || code);
    this.name = 'APIError';
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
}

export function invalid(field, reason) {
  return new APIError({ code: 'invalid_argument', message: `invalid ${field}: ${reason}` });
}

function check(ok, field, reason) {
  if (!ok) throw invalid(field, reason);
}

/** ifMatch formats a version number as the ETag the API expects ("3"). */
export function ifMatch(version) {
  check(Number.isSafeInteger(version) && version >= 1, 'If-Match', 'must be a version number (a positive integer)');
  return `"${version}"`;
}

function newRequestId() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  return `ui-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

/**
 * Client calls the API with one bearer token.
 *
 *   const c = new Client({ token });                  // same origin
 *   const c = new Client({ baseURL: 'http://127.0.0.1:8270', token, fetch });
 */
export class Client {
  #token;
  #fetch;

  constructor({ baseURL = '', token, fetch: fetchImpl } = {}) {
    if (!isString(token) || token.trim() === '') throw invalid('token', 'is required');
    if (/[\s]/.test(token.trim())) throw invalid('token', 'must not contain spaces or line breaks');
    this.baseURL = String(baseURL).replace(/\/+$/, '');
    this.#token = token.trim();
    const f = fetchImpl || globalThis.fetch;
    if (typeof f !== 'function') throw new Error('no fetch implementation');
    // Keep `this` of the global fetch (browsers require it).
    this.#fetch = fetchImpl ? fetchImpl : (...args) => globalThis.fetch(...args);
  }

  /**
   * request sends one call and returns {status, body, headers}; an answer
   * other than 2xx throws an APIError.
   */
  async request(method, path, { body, headers = {} } = {}) {
    const { resp, requestId } = await this.#send(method, path, { body, headers, accept: 'application/json' });
    const rid = resp.headers.get('X-Request-Id') || requestId;
    const { text, parsed } = await readJSON(resp);
    if (!resp.ok) throw errorOf(resp, parsed, rid);
    if (text !== '' && parsed === null) {
      throw new APIError({ status: resp.status, code: 'bad_response', message: 'the gateway answered something other than JSON', requestId: rid });
    }
    return { status: resp.status, body: parsed, headers: resp.headers, requestId: rid };
  }

  /** #send makes one call and answers the Response, whatever its status; only a network failure throws. */
  async #send(method, path, { body, headers = {}, accept, signal } = {}) {
    const requestId = newRequestId();
    const h = { Accept: accept, Authorization: `Bearer ${this.#token}`, 'X-Request-Id': requestId, ...headers };
    const init = { method, headers: h, cache: 'no-store', redirect: 'error', credentials: 'same-origin' };
    if (signal) init.signal = signal;
    if (body !== undefined) {
      h['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    try {
      return { resp: await this.#fetch(this.baseURL + path, init), requestId };
    } catch (e) {
      throw new APIError({ code: 'network', message: `the gateway could not be reached (${e && e.message ? e.message : 'network error'})`, requestId });
    }
  }

  /**
   * events opens the project's change stream (Server-Sent Events, see
   * docs/api.md "Change notifications") and answers the Response as soon as
   * the gateway accepted it: read its body with events.js. lastEventId (the
   * id of the last event seen) resumes after it; signal closes the stream.
   * A refusal throws an APIError, as request does.
   */
  async events(project, { lastEventId = '', signal } = {}) {
    check(validProject(project), 'project', rules.project);
    const headers = {};
    if (lastEventId !== '' && lastEventId !== null && lastEventId !== undefined) {
      check(/^\d{1,20}$/.test(String(lastEventId)), 'Last-Event-ID', 'must be the id of an event: a non-negative integer');
      headers['Last-Event-ID'] = String(lastEventId);
    }
    const path = `/v1/projects/${encodeURIComponent(project)}/events`;
    const { resp, requestId } = await this.#send('GET', path, { headers, accept: 'text/event-stream', signal });
    const rid = resp.headers.get('X-Request-Id') || requestId;
    if (!resp.ok) throw errorOf(resp, (await readJSON(resp)).parsed, rid);
    if (!/^text\/event-stream\s*(;|$)/i.test(resp.headers.get('Content-Type') || '')) {
      if (resp.body && typeof resp.body.cancel === 'function') resp.body.cancel().catch(() => {});
      throw new APIError({ status: resp.status, code: 'bad_response', message: 'the gateway answered something other than an event stream', requestId: rid });
    }
    return resp;
  }

  #secrets(project) {
    check(validProject(project), 'project', rules.project);
    return `/v1/projects/${encodeURIComponent(project)}/secrets`;
  }

  #secret(project, name) {
    check(validName(name), 'name', rules.name);
    return `${this.#secrets(project)}/${encodeURIComponent(name)}`;
  }

  /** account: {subject, projects: [{name, actions: [...]}]}: who the token is and where it has a binding. */
  async account() {
    const r = await this.request('GET', '/v1/projects');
    const body = r.body || {};
    return {
      subject: typeof body.subject === 'string' ? body.subject : '',
      projects: Array.isArray(body.projects) ? body.projects : [],
    };
  }

  /** projects: [{name, actions: [...]}] the token has a binding on. */
  async projects() {
    return (await this.account()).projects;
  }

  /**
   * list answers one page: {secrets: [metadata], nextPageToken}. Pass
   * nextPageToken back as pageToken while it is not empty; a page may hold
   * fewer secrets than pageSize (even none) before the end.
   */
  async list(project, { prefix = '', pageSize = 0, pageToken = '' } = {}) {
    const q = new URLSearchParams();
    if (prefix !== '') {
      check(validPrefix(prefix), 'prefix', rules.prefix);
      q.set('prefix', prefix);
    }
    if (pageSize) {
      check(Number.isInteger(pageSize) && pageSize >= 1 && pageSize <= limits.maxPageSize, 'page_size', `must be an integer from 1 to ${limits.maxPageSize}`);
      q.set('page_size', String(pageSize));
    }
    if (pageToken) {
      check(isString(pageToken), 'page_token', 'must be a string');
      q.set('page_token', pageToken);
    }
    const qs = q.toString();
    const r = await this.request('GET', this.#secrets(project) + (qs ? `?${qs}` : ''));
    return { secrets: (r.body && r.body.secrets) || [], nextPageToken: (r.body && r.body.next_page_token) || '' };
  }

  /** listAll follows every page (for scripts; the UI pages by hand). */
  async listAll(project, { prefix = '', pageSize = 0 } = {}) {
    const out = [];
    let pageToken = '';
    do {
      const page = await this.list(project, { prefix, pageSize, pageToken });
      out.push(...page.secrets);
      pageToken = page.nextPageToken;
    } while (pageToken);
    return out;
  }

  /** metadata: {project, name, keys, version, labels, created_at, updated_at}. */
  async metadata(project, name) {
    return (await this.request('GET', `${this.#secret(project, name)}/metadata`)).body;
  }

  /**
   * versions: [{version, created_at}] oldest first. keys: true adds, to
   * each of the newest 20, its key names ("keys"; absent when the backend
   * no longer serves that version). Never a value.
   */
  async versions(project, name, { keys = false } = {}) {
    const r = await this.request('GET', `${this.#secret(project, name)}/versions${keys ? '?keys=true' : ''}`);
    return (r.body && r.body.versions) || [];
  }

  /**
   * rollback writes version N's data again as a new version (the labels
   * stay as they are), inside the gateway: the values never reach this
   * client. ifMatchVersion (the version the user saw) makes it conditional:
   * 412 version_mismatch when the secret changed since. Answers the new
   * version's metadata.
   */
  async rollback(project, name, { version } = {}, { ifMatchVersion } = {}) {
    const path = `${this.#secret(project, name)}/rollback`;
    check(Number.isSafeInteger(version) && version >= 1, 'version', 'must be the number of a stored version (1 or more)');
    return (await this.request('POST', path, { body: { version }, headers: matchHeader(ifMatchVersion) })).body;
  }

  /** create makes a secret at version 1 and answers its metadata. */
  async create(project, { name, data, labels } = {}) {
    const path = this.#secrets(project);
    check(validName(name), 'name', rules.name);
    checkData(data);
    const body = { name, data };
    if (labels !== undefined) body.labels = checkLabels(labels);
    return (await this.request('POST', path, { body })).body;
  }

  /**
   * replace writes every pair anew (PUT). labels undefined keeps them, {}
   * clears them. ifMatchVersion (the metadata's version) makes it
   * conditional: 412 version_mismatch when the secret changed since.
   */
  async replace(project, name, { data, labels } = {}, { ifMatchVersion } = {}) {
    const path = this.#secret(project, name);
    checkData(data);
    const body = { data };
    if (labels !== undefined) body.labels = checkLabels(labels);
    return (await this.request('PUT', path, { body, headers: matchHeader(ifMatchVersion) })).body;
  }

  /** patch sets some keys and unsets others, keeping the rest; labels, when given, replace them all. */
  async patch(project, name, { set, unset, labels } = {}, { ifMatchVersion } = {}) {
    const path = this.#secret(project, name);
    const body = {};
    if (set !== undefined) {
      check(isPlainObject(set), 'set', 'must be an object of key/value strings');
      for (const [k, v] of Object.entries(set)) {
        check(validKey(k), 'set', `key ${JSON.stringify(k)} ${rules.key}`);
        check(isString(v), `set.${k}`, 'value must be a string');
      }
      body.set = set;
    }
    if (unset !== undefined) {
      check(Array.isArray(unset) && unset.every((k) => validKey(k)), 'unset', `must be an array of keys that ${rules.key}`);
      body.unset = unset;
    }
    if (labels !== undefined) body.labels = checkLabels(labels);
    check(Object.keys(body.set || {}).length + (body.unset || []).length > 0 || body.labels !== undefined, 'body', 'set or unset at least one key, or give labels');
    return (await this.request('PATCH', path, { body, headers: matchHeader(ifMatchVersion) })).body;
  }

  /** delete removes the secret with all its versions. */
  async delete(project, name, { ifMatchVersion } = {}) {
    await this.request('DELETE', this.#secret(project, name), { headers: matchHeader(ifMatchVersion) });
  }

  /**
   * copy copies a secret (inside the gateway: the value never reaches
   * this client) to another project and/or name; it answers the copy's
   * metadata.
   */
  async copy(project, name, { toProject = '', as = '', version = 0, overwrite = false } = {}) {
    const path = `${this.#secret(project, name)}/copy`;
    const body = {};
    if (toProject) {
      check(validProject(toProject), 'to_project', rules.project);
      body.to_project = toProject;
    }
    if (as) {
      check(validName(as), 'as', rules.name);
      body.as = as;
    }
    if (version) {
      check(Number.isSafeInteger(version) && version >= 1, 'version', 'must be 0 (latest) or a positive version number');
      body.version = version;
    }
    if (overwrite) body.overwrite = true;
    return (await this.request('POST', path, { body })).body;
  }
}

/** readJSON reads an answer's body: its text, and its JSON or null. */
async function readJSON(resp) {
  let text = '';
  try {
    text = await resp.text();
  } catch {
    text = '';
  }
  let parsed = null;
  if (text !== '') {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
  }
  return { text, parsed };
}

/** errorOf is the APIError of an answer other than 2xx, from its error envelope when it has one. */
function errorOf(resp, parsed, requestId) {
  const e = parsed && typeof parsed === 'object' && parsed.error && typeof parsed.error === 'object' ? parsed.error : null;
  return new APIError({
    status: resp.status,
    code: e && isString(e.code) && e.code ? e.code : `http_${resp.status}`,
    message: e && isString(e.message) && e.message ? e.message : `HTTP ${resp.status}${resp.statusText ? ' ' + resp.statusText : ''}`,
    requestId,
  });
}

function matchHeader(version) {
  return version === undefined || version === null || version === 0 ? {} : { 'If-Match': ifMatch(version) };
}

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function checkData(data) {
  check(isPlainObject(data), 'data', 'is required: an object of key/value strings');
  const keys = Object.keys(data);
  check(keys.length > 0, 'data', 'must hold at least one key');
  check(keys.length <= limits.maxKeys, 'data', `holds ${keys.length} keys, at most ${limits.maxKeys} are allowed`);
  for (const k of keys) {
    check(validKey(k), 'data', `key ${JSON.stringify(k)} ${rules.key}`);
    check(isString(data[k]), `data.${k}`, 'value must be a string');
  }
}

function checkLabels(labels) {
  check(isPlainObject(labels), 'labels', 'must be an object of strings');
  const keys = Object.keys(labels);
  check(keys.length <= limits.maxLabels, 'labels', `holds ${keys.length} labels, at most ${limits.maxLabels} are allowed`);
  for (const k of keys) {
    check(validLabelKey(k), 'labels', `key ${JSON.stringify(k)} ${rules.labelKey}`);
    check(isString(labels[k]), `labels.${k}`, 'value must be a string');
    check([...labels[k]].length <= limits.maxLabelValueChars, `labels.${k}`, `value is longer than ${limits.maxLabelValueChars} characters`);
  }
  return labels;
}
