// app.js: the secretgate web UI. Vanilla DOM on top of api.js (HTTP) and
// forms.js (pure helpers); the dialogs are in dialogs.js (and formkit.js),
// the version history and rollback in history.js, what the role may do in
// roles.js, the live updates of the list in live.js, "Copy reference" in
// copyref.js.
//
// Rules kept throughout:
//  - the token lives in sessionStorage only (nothing that outlives the tab, never a URL);
//  - no secret value is ever fetched or shown: api.js cannot read values, and
//    value inputs are password fields (or masked textareas for multi-line
//    values), emptied after every request and on close;
//  - a value is sent exactly as entered: line breaks are never dropped or
//    changed without the user choosing so (see valueField);
//  - the DOM is built with createElement/textContent only;
//  - a live update never overwrites what the user is doing: it changes the
//    list, and says when the open secret changed (see live.js).

import { Client } from './api.js';
import * as F from './forms.js';
import { $, h, show } from './dom.js';
import { setupDialogs } from './dialogs.js';
import { createLive } from './live.js';
import { keyItem } from './copyref.js';
import { historyItems, setupRollback } from './history.js';
import * as R from './roles.js';
import * as V from './validate.js';
import { clearFieldErrors, setFieldError } from './formkit.js';

const TOKEN_KEY = 'secretgate.token';
const PROJECT_KEY = 'secretgate.project';
const PAGE_SIZE = 50;
const MAX_PAGE_SIZE = 1000;

const session = {
  get(k) {
    try {
      return window.sessionStorage.getItem(k);
    } catch {
      return null;
    }
  },
  set(k, v) {
    try {
      window.sessionStorage.setItem(k, v);
    } catch {
      // Storage disabled: the session lasts as long as the page.
    }
  },
  remove(k) {
    try {
      window.sessionStorage.removeItem(k);
    } catch {
      // nothing stored
    }
  },
};

// --- state ---

const state = {
  client: null,
  projects: [],
  project: '',
  perms: F.permissions([]),
  secrets: [],
  nextPageToken: '',
  prefix: '',
  selected: null, // metadata of the secret in the details pane
  generation: 0, // bumps on project/filter change, so late answers are dropped
};

// --- messages ---

function notify(text) {
  $('status').textContent = text;
}

function clearAlert(area) {
  const a = area || $('alert');
  a.textContent = '';
  if (!area) show($('alert-dismiss'), false);
}

/** startAction clears what the page said about earlier actions: a new one starts. */
function startAction() {
  notify('');
  clearAlert();
}

/**
 * fail shows an error in the page's alert area or a dialog's. A refused
 * token ends the session.
 */
function fail(err, area) {
  if (err && err.status === 401 && state.client) {
    signOut();
    showAlert(new Error(`${F.describeError(err)}. Sign in again.`));
    return;
  }
  if (area) {
    area.textContent = F.describeError(err);
    return;
  }
  showAlert(err);
}

function showAlert(err) {
  $('alert').textContent = F.describeError(err);
  show($('alert-dismiss'), true);
}

/** busy disables a button while fn runs; errors go to fail(err, area). */
async function busy(button, area, fn) {
  if (button) button.disabled = true;
  if (area) area.textContent = '';
  try {
    return await fn();
  } catch (err) {
    fail(err, area);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

// --- sign in / out ---

async function signIn(token, { restoring = false } = {}) {
  const client = new Client({ token }); // throws on an empty or malformed token
  const { subject, projects } = await client.account();
  state.client = client;
  $('who').textContent = subject ? `Signed in as ${subject}` : '';
  session.set(TOKEN_KEY, token);
  state.projects = projects;
  show($('sign-in'), false);
  show($('session'), true);
  if (!restoring) notify('Signed in.');
  renderProjectPicker();
}

function signOut() {
  live.stop();
  state.client = null;
  state.projects = [];
  state.project = '';
  state.secrets = [];
  state.selected = null;
  state.generation++;
  session.remove(TOKEN_KEY);
  session.remove(PROJECT_KEY);
  $('who').textContent = '';
  for (const d of document.querySelectorAll('dialog')) {
    if (d.open) d.close();
  }
  $('secrets-body').replaceChildren();
  $('versions-body').replaceChildren();
  $('details-meta').replaceChildren();
  $('project').replaceChildren();
  show($('workspace'), false);
  show($('details'), false);
  show($('session'), false);
  show($('sign-in'), true);
  clearAlert();
  notify('Signed out.');
  $('token').focus();
}

// --- projects ---

function renderProjectPicker() {
  const select = $('project');
  select.replaceChildren(...state.projects.map((p) => h('option', { value: p.name, text: p.name })));
  if (state.projects.length === 0) {
    show($('workspace'), false);
    showAlert(new Error('This token is not bound to any project.'));
    return;
  }
  const remembered = session.get(PROJECT_KEY);
  const pick = state.projects.some((p) => p.name === remembered) ? remembered : state.projects[0].name;
  select.value = pick;
  selectProject(pick);
}

function selectProject(name) {
  const p = state.projects.find((x) => x.name === name);
  if (!p) return;
  state.project = p.name;
  state.perms = F.permissions(p.actions);
  session.set(PROJECT_KEY, p.name);
  state.prefix = '';
  $('prefix').value = '';
  closeDetails();
  show($('add-secret'), state.perms.create);
  $('role').textContent = R.roleSummary(state.perms, { project: p.name, copyTargets: F.copyTargets(state.projects) });
  $('details-hint').textContent = R.detailsHint(state.perms, { canCopy: state.perms.copyFrom && F.copyTargets(state.projects).length > 0 });
  state.secrets = [];
  state.nextPageToken = '';
  $('secrets-body').replaceChildren();
  $('secrets-count').textContent = '';
  show($('secrets-empty'), false);
  show($('workspace'), true);
  clearAlert();
  // The first list comes once the project's change stream is open (live.js).
  live.start(p.name);
}

// --- the list ---

/**
 * loadSecrets lists the first page again, or (more) the next one. pageSize
 * (a re-list after a live update) lists as many as are shown, within the
 * API's limits.
 */
function loadSecrets(more, { pageSize = PAGE_SIZE } = {}) {
  return live.hold(() => listPage(more, Math.min(MAX_PAGE_SIZE, Math.max(PAGE_SIZE, pageSize))));
}

async function listPage(more, pageSize) {
  const gen = more ? state.generation : ++state.generation;
  const project = state.project;
  if (!state.client || !project) return;
  const table = $('secrets-table');
  table.setAttribute('aria-busy', 'true');
  const page = await busy($('load-more'), null, () =>
    state.client.list(project, { prefix: state.prefix, pageSize: more ? PAGE_SIZE : pageSize, pageToken: more ? state.nextPageToken : '' }),
  );
  table.removeAttribute('aria-busy');
  if (!page || gen !== state.generation) return;
  state.secrets = more ? state.secrets.concat(page.secrets) : page.secrets;
  state.nextPageToken = page.nextPageToken;
  renderTable();
}

function renderTable() {
  const body = $('secrets-body');
  // Redrawn rows must not take the focus away from someone using the keyboard.
  const focused = document.activeElement;
  const focusName = focused && focused.classList && focused.classList.contains('link') && focused.closest('#secrets-body') === body ? focused.textContent : null;
  body.replaceChildren(...state.secrets.map(secretRow));
  if (focusName !== null) {
    const again = [...body.querySelectorAll('button.link')].find((b) => b.textContent === focusName);
    if (again) again.focus();
  }
  const filter = state.prefix ? ` starting with “${state.prefix}”` : '';
  const more = state.nextPageToken ? ', more to load' : '';
  $('secrets-caption').textContent = `Secrets of project “${state.project}”${filter}: ${state.secrets.length} shown${more}`;
  $('secrets-count').textContent = `${state.secrets.length}${state.nextPageToken ? '+' : ''}`;
  const empty = state.secrets.length === 0;
  show($('secrets-table'), !empty);
  show($('secrets-empty'), empty);
  if (empty) {
    const e = R.emptyState(state.perms, { project: state.project, prefix: state.prefix });
    $('empty-title').textContent = e.title;
    $('empty-text').textContent = e.text;
    $('empty-command').textContent = e.command;
    show($('empty-command'), e.command !== '');
  }
  show($('load-more'), state.nextPageToken !== '');
}

function secretRow(m) {
  // A name too long for its column ends in "…"; the title has it whole.
  const open = h('button', { type: 'button', class: 'link', title: m.name, text: m.name });
  open.addEventListener('click', () => {
    startAction();
    openDetails(m.name);
  });
  const selected = state.selected && state.selected.name === m.name;
  const labels = F.labelsToRows(m.labels).map(({ key, value }) => `${key}=${value}`);
  // data-label names each cell where narrow screens show rows as cards.
  return h(
    'tr',
    // The roles keep the table's meaning where narrow screens draw rows as cards.
    { role: 'row', class: selected ? 'selected' : null, 'aria-current': selected ? 'true' : null },
    h('th', { scope: 'row', role: 'rowheader', class: 'col-name' }, open),
    h('td', { role: 'cell', class: 'col-keys', 'data-label': 'Keys' }, ...items(m.keys || [])),
    h('td', { role: 'cell', class: 'col-version num', 'data-label': 'Version', text: String(m.version) }),
    h('td', { role: 'cell', class: 'col-labels', 'data-label': 'Labels' }, ...items(labels)),
    h('td', { role: 'cell', class: 'col-updated', 'data-label': 'Updated' }, timeEl(m.updated_at, { short: true })),
  );
}

/**
 * items are words of a list cell ("a, b"), each kept whole: one too long
 * for the column ends in "…" (title: the whole word), none breaks mid-word.
 */
function items(words) {
  const out = [];
  words.forEach((w, i) => {
    const last = i === words.length - 1;
    // The comma is part of its word: a line never starts with one.
    out.push(h('span', { class: 'item', title: w, text: last ? w : `${w},` }));
    if (!last) out.push(' ');
  });
  return out;
}

/** timeEl is a time in UTC; short (the list) leaves out the seconds and says UTC in the title. */
function timeEl(s, { short = false } = {}) {
  const text = F.formatTime(s);
  if (!short || !text) return h('time', { datetime: s || null, text });
  return h('time', { datetime: s, title: text, text: text.replace(/:\d\d UTC$/, '') });
}

/**
 * inList says whether a secret of this name belongs in the list as loaded:
 * it matches the filter, and comes before the pages not loaded yet.
 */
function inList(name) {
  if (state.prefix && !name.startsWith(state.prefix)) return false;
  if (state.secrets.some((m) => m.name === name)) return true;
  const last = state.secrets[state.secrets.length - 1];
  return !state.nextPageToken || (!!last && name < last.name);
}

/** putSecret shows new metadata in the list (when its name is in the loaded range). */
function putSecret(meta) {
  if (meta.project !== state.project) return;
  if (inList(meta.name)) state.secrets = F.upsertSorted(state.secrets, meta);
  renderTable();
}

function dropSecret(name) {
  state.secrets = state.secrets.filter((m) => m.name !== name);
  renderTable();
}

// --- details ---

function openDetails(name) {
  return live.hold(() => showDetails(name));
}

async function showDetails(name) {
  const project = state.project;
  const gen = state.generation;
  let got;
  try {
    got = await Promise.all([state.client.metadata(project, name), state.client.versions(project, name, { keys: true })]);
  } catch (err) {
    if (err.code === 'not_found' && project === state.project) {
      // Deleted (or renamed away) since the list was loaded.
      dropSecret(name);
      if (state.selected && state.selected.name === name) closeDetails();
    }
    fail(err);
    return;
  }
  if (gen !== state.generation || project !== state.project) return;
  const [meta, versions] = got;
  state.selected = meta;
  renderDetails(meta, versions);
  putSecret(meta);
  $('details-title').focus();
}

async function refreshDetails(meta) {
  state.selected = meta;
  putSecret(meta);
  const versions = await busy(null, null, () => state.client.versions(meta.project, meta.name, { keys: true }));
  if (state.selected && state.selected.name === meta.name) renderDetails(meta, versions || []);
}

function renderDetails(meta, versions) {
  $('details-title').textContent = meta.name;
  const row = (term, ...defs) => [h('dt', { text: term }), h('dd', {}, ...defs)];
  const keys = h('ul', { class: 'keys' }, ...(meta.keys || []).map((k) => keyItem(meta.project, meta.name, k, notify)));
  $('details-meta').replaceChildren(
    ...row('Project', meta.project),
    ...row('Keys', keys),
    ...row('Version', String(meta.version)),
    ...row('Labels', F.formatLabels(meta.labels) || '—'),
    ...row('Created', timeEl(meta.created_at)),
    ...row('Updated', timeEl(meta.updated_at)),
  );
  const p = state.perms;
  $('versions-body').replaceChildren(...historyItems(meta, versions, { onRollback: p.update ? (c) => openRollback(c) : undefined }));
  show($('act-replace'), p.update);
  show($('act-set'), p.update);
  show($('act-remove'), p.update);
  show($('act-labels'), p.update);
  const onlyKey = (meta.keys || []).length <= 1;
  $('act-remove').disabled = onlyKey;
  $('act-remove').title = onlyKey ? 'The only key cannot be removed: delete the secret instead' : '';
  show($('act-copy'), p.copyFrom && F.copyTargets(state.projects).length > 0);
  show($('act-delete'), p.delete);
  show($('details-stale'), false);
  show($('details'), true);
  renderTable(); // marks the selected row
}

function closeDetails() {
  state.selected = null;
  show($('details'), false);
  show($('details-stale'), false);
  if (state.secrets.length) renderTable();
}

/**
 * staleDetails says that the open secret was changed (meta: its new
 * metadata) or deleted (meta null) by someone else. The details and any
 * open form stay as they are: the user reloads when ready.
 */
function staleDetails(name, meta) {
  if (!state.selected || state.selected.name !== name) return;
  $('details-stale-text').textContent = meta
    ? `“${name}” was changed by someone else (now version ${meta.version}) — reload to see it.`
    : `“${name}” was deleted by someone else.`;
  const button = $('details-reload');
  button.textContent = meta ? 'Reload' : 'Close';
  button.setAttribute('data-action', meta ? 'reload' : 'close');
  show($('details-stale'), true);
}

/** liveState shows how the list's change stream is doing (kind: live, connecting, retrying, off, paused). */
function liveState(kind, text) {
  const el = $('live-state');
  el.textContent = text;
  el.className = `live-state ${kind}`;
  el.title = {
    live: 'The list shows changes made by others as they happen.',
    connecting: 'Opening the change stream.',
    retrying: 'The change stream was cut: reconnecting, without losing a change.',
    off: 'This gateway does not stream changes to this token: reload the page to see changes made by others.',
    paused: 'Live updates resume when the tab is shown.',
  }[kind] || '';
}

// --- the page's parts, for dialogs.js and live.js ---

const app = {
  state,
  busy,
  notify,
  fail: (err) => fail(err),
  putSecret,
  dropSecret,
  inList,
  openDetails,
  refreshDetails,
  closeDetails,
  staleDetails,
  loadSecrets,
  liveState,
  hold: (fn) => live.hold(fn),
  clearAlert: () => clearAlert(),
  startAction,
};
const live = createLive(app);
let openRollback = () => {}; // history.js's, once set up

// --- start ---

function setup() {
  const forms = setupDialogs(app);
  openRollback = setupRollback(app, forms);

  $('sign-in-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = $('token');
    const token = input.value.trim();
    input.value = '';
    clearAlert();
    notify('');
    await busy(ev.submitter || null, null, () => signIn(token));
    if (!state.client) input.focus();
  });
  $('sign-out').addEventListener('click', signOut);
  $('project').addEventListener('change', (ev) => {
    startAction();
    selectProject(ev.target.value);
  });
  $('filter-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    startAction();
    clearFieldErrors($('filter-form'));
    const problem = V.prefixProblem($('prefix').value);
    if (problem) {
      setFieldError($('prefix'), problem);
      $('prefix').focus();
      return;
    }
    state.prefix = F.prefixFilter($('prefix').value);
    closeDetails();
    loadSecrets(false);
  });
  $('clear-filter').addEventListener('click', () => {
    startAction();
    clearFieldErrors($('filter-form'));
    $('prefix').value = '';
    state.prefix = '';
    closeDetails();
    loadSecrets(false);
  });
  $('load-more').addEventListener('click', () => {
    startAction();
    loadSecrets(true);
  });
  $('details-close').addEventListener('click', () => {
    const name = state.selected && state.selected.name;
    closeDetails();
    const btn = name && [...$('secrets-body').querySelectorAll('button.link')].find((b) => b.textContent === name);
    if (btn) btn.focus();
  });
  $('alert-dismiss').addEventListener('click', () => clearAlert());
  $('details-reload').addEventListener('click', () => {
    const name = state.selected && state.selected.name;
    if (!name) return;
    if ($('details-reload').getAttribute('data-action') === 'close') closeDetails();
    else openDetails(name);
  });
  if (typeof document.addEventListener === 'function') {
    document.addEventListener('visibilitychange', () => live.visibility(document.visibilityState === 'hidden'));
  }

  const saved = session.get(TOKEN_KEY);
  if (saved) {
    signIn(saved, { restoring: true }).catch((err) => {
      session.remove(TOKEN_KEY);
      show($('sign-in'), true);
      fail(err);
    });
  } else {
    show($('sign-in'), true);
  }
}

setup();
