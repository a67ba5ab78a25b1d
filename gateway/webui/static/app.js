// app.js: the secretgate web UI. Vanilla DOM on top of api.js (HTTP) and
// forms.js (pure helpers).
//
// Rules kept throughout:
//  - the token lives in sessionStorage only (nothing that outlives the tab, never a URL);
//  - no secret value is ever fetched or shown: api.js cannot read values, and
//    value inputs are password fields (or masked textareas for multi-line
//    values), emptied after every request and on close;
//  - a value is sent exactly as entered: line breaks are never dropped or
//    changed without the user choosing so (see valueField);
//  - the DOM is built with createElement/textContent only.

import { Client } from './api.js';
import * as F from './forms.js';
import { $, h, show } from './dom.js';
import { kvRow, readRows, readValue, valueField, wipeValues } from './values.js';

const TOKEN_KEY = 'secretgate.token';
const PROJECT_KEY = 'secretgate.project';
const PAGE_SIZE = 50;


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
  show($('workspace'), true);
  clearAlert();
  loadSecrets(false);
}

// --- the list ---

async function loadSecrets(more) {
  const gen = more ? state.generation : ++state.generation;
  const project = state.project;
  const table = $('secrets-table');
  table.setAttribute('aria-busy', 'true');
  const page = await busy($('load-more'), null, () =>
    state.client.list(project, { prefix: state.prefix, pageSize: PAGE_SIZE, pageToken: more ? state.nextPageToken : '' }),
  );
  table.removeAttribute('aria-busy');
  if (!page || gen !== state.generation) return;
  state.secrets = more ? state.secrets.concat(page.secrets) : page.secrets;
  state.nextPageToken = page.nextPageToken;
  renderTable();
}

function renderTable() {
  const body = $('secrets-body');
  body.replaceChildren(...state.secrets.map(secretRow));
  const filter = state.prefix ? ` starting with “${state.prefix}”` : '';
  const more = state.nextPageToken ? ', more to load' : '';
  $('secrets-caption').textContent = `Secrets of project “${state.project}”${filter}: ${state.secrets.length} shown${more}`;
  show($('secrets-empty'), state.secrets.length === 0);
  show($('load-more'), state.nextPageToken !== '');
}

function secretRow(m) {
  const open = h('button', { type: 'button', class: 'link', text: m.name });
  open.addEventListener('click', () => openDetails(m.name));
  const selected = state.selected && state.selected.name === m.name;
  return h(
    'tr',
    { class: selected ? 'selected' : null, 'aria-current': selected ? 'true' : null },
    h('th', { scope: 'row' }, open),
    h('td', { text: (m.keys || []).join(', ') }),
    h('td', { class: 'num', text: String(m.version) }),
    h('td', { text: F.formatLabels(m.labels) }),
    h('td', {}, timeEl(m.updated_at)),
  );
}

function timeEl(s) {
  return h('time', { datetime: s || null, text: F.formatTime(s) });
}

/** putSecret shows new metadata in the list (when its name is in the loaded range). */
function putSecret(meta) {
  if (meta.project !== state.project) return;
  if (state.prefix && !meta.name.startsWith(state.prefix)) return;
  const known = state.secrets.some((m) => m.name === meta.name);
  const last = state.secrets[state.secrets.length - 1];
  const inRange = known || !state.nextPageToken || (last && meta.name < last.name);
  if (inRange) state.secrets = F.upsertSorted(state.secrets, meta);
  renderTable();
}

function dropSecret(name) {
  state.secrets = state.secrets.filter((m) => m.name !== name);
  renderTable();
}

// --- details ---

async function openDetails(name) {
  const project = state.project;
  const gen = state.generation;
  let got;
  try {
    got = await Promise.all([state.client.metadata(project, name), state.client.versions(project, name)]);
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
  const versions = await busy(null, null, () => state.client.versions(meta.project, meta.name));
  if (state.selected && state.selected.name === meta.name) renderDetails(meta, versions || []);
}

function renderDetails(meta, versions) {
  $('details-title').textContent = meta.name;
  const row = (term, ...defs) => [h('dt', { text: term }), h('dd', {}, ...defs)];
  const keys = h('ul', { class: 'keys' }, ...(meta.keys || []).map((k) => h('li', {}, h('code', { text: k }))));
  $('details-meta').replaceChildren(
    ...row('Project', meta.project),
    ...row('Keys', keys),
    ...row('Version', String(meta.version)),
    ...row('Labels', F.formatLabels(meta.labels) || '—'),
    ...row('Created', timeEl(meta.created_at)),
    ...row('Updated', timeEl(meta.updated_at)),
  );
  $('versions-body').replaceChildren(
    ...[...versions].reverse().map((v) => h('tr', {}, h('td', { class: 'num', text: String(v.version) }), h('td', {}, timeEl(v.created_at)))),
  );
  const p = state.perms;
  show($('act-replace'), p.update);
  show($('act-set'), p.update);
  show($('act-remove'), p.update);
  show($('act-labels'), p.update);
  const onlyKey = (meta.keys || []).length <= 1;
  $('act-remove').disabled = onlyKey;
  $('act-remove').title = onlyKey ? 'The only key cannot be removed: delete the secret instead' : '';
  show($('act-copy'), p.copyFrom && F.copyTargets(state.projects).length > 0);
  show($('act-delete'), p.delete);
  show($('details'), true);
  renderTable(); // marks the selected row
}

function closeDetails() {
  state.selected = null;
  show($('details'), false);
  if (state.secrets.length) renderTable();
}

function openDialog(id, focusId) {
  const d = $(id);
  const err = d.querySelector('.alert');
  if (err) err.textContent = '';
  d.showModal();
  if (focusId) $(focusId).focus();
}

function setupDialogs() {
  for (const d of document.querySelectorAll('dialog')) {
    // Closing (Cancel, Escape, or after a save) forgets every typed value.
    d.addEventListener('close', () => {
      wipeValues(d);
      const form = d.querySelector('form');
      if (form) form.reset();
      for (const box of d.querySelectorAll('.rows')) box.replaceChildren();
    });
    for (const b of d.querySelectorAll('button.cancel')) b.addEventListener('click', () => d.close());
  }
}

/**
 * submitter wires a dialog's form: build() makes the request from the
 * inputs (validation errors keep the inputs), send(body) calls the API;
 * values are wiped once a request was sent, whatever its outcome.
 */
function submitter(formId, errorId, build, send) {
  const form = $(formId);
  const dialog = form.closest('dialog');
  const area = $(errorId);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    area.textContent = '';
    let body;
    try {
      body = build();
    } catch (err) {
      area.textContent = F.describeError(err);
      return;
    }
    const button = form.querySelector('button[type="submit"]');
    const ok = await busy(button, area, async () => {
      try {
        return await send(body);
      } finally {
        body = null;
        wipeValues(dialog);
      }
    });
    if (ok && dialog.open) dialog.close();
  });
}

function optionalEmpty(pairs, allowEmpty) {
  if (allowEmpty) return pairs;
  for (const p of pairs) {
    const key = String(p.key || '').trim();
    if (key !== '' && p.value === '') {
      throw new Error(`Key “${key}” has no value. Enter one, remove the row, or tick “Allow empty values”.`);
    }
  }
  return pairs;
}

// "+ Add secret"
function openAdd() {
  $('add-pairs').replaceChildren(kvRow('pair'));
  $('add-labels').replaceChildren(kvRow('label'));
  openDialog('dlg-add', 'add-name');
}

function setupAdd() {
  $('add-secret').addEventListener('click', openAdd);
  $('add-pair').addEventListener('click', () => {
    const r = kvRow('pair');
    $('add-pairs').append(r);
    r.querySelector('input').focus();
  });
  $('add-label').addEventListener('click', () => {
    const r = kvRow('label');
    $('add-labels').append(r);
    r.querySelector('input').focus();
  });
  submitter(
    'form-add',
    'add-error',
    () =>
      F.createRequest({
        name: $('add-name').value,
        pairs: optionalEmpty(readRows($('add-pairs')), $('add-allow-empty').checked),
        labels: readRows($('add-labels')),
      }),
    async (body) => {
      const project = state.project;
      const meta = await state.client.create(project, body);
      notify(`Created secret “${meta.name}” (version ${meta.version}) in project “${project}”.`);
      putSecret(meta);
      openDetails(meta.name);
      return meta;
    },
  );
}

// "Replace values"
let replacing = null; // metadata read when the dialog opened: its version is the If-Match

async function openReplace() {
  const s = state.selected;
  if (!s) return;
  const meta = await busy($('act-replace'), null, () => state.client.metadata(s.project, s.name));
  if (!meta) return;
  replacing = meta;
  $('dlg-replace-title').textContent = `Replace values of “${meta.name}”`;
  $('replace-hint').textContent =
    `Enter every pair again: keys left out are removed. Saving makes version ${meta.version + 1}, ` +
    `and is refused if the secret changed after version ${meta.version}.`;
  const keys = meta.keys && meta.keys.length ? meta.keys : [''];
  $('replace-pairs').replaceChildren(...keys.map((key) => kvRow('pair', { key })));
  const labels = F.labelsToRows(meta.labels);
  $('replace-labels').replaceChildren(...(labels.length ? labels : [{}]).map((l) => kvRow('label', l)));
  openDialog('dlg-replace');
  const first = $('replace-pairs').querySelector('.row-value');
  if (first) first.focus();
}

function setupReplace() {
  $('act-replace').addEventListener('click', openReplace);
  $('replace-pair').addEventListener('click', () => {
    const r = kvRow('pair');
    $('replace-pairs').append(r);
    r.querySelector('input').focus();
  });
  $('replace-label').addEventListener('click', () => {
    const r = kvRow('label');
    $('replace-labels').append(r);
    r.querySelector('input').focus();
  });
  submitter(
    'form-replace',
    'replace-error',
    () =>
      F.replaceRequest({
        pairs: optionalEmpty(readRows($('replace-pairs')), $('replace-allow-empty').checked),
        labels: readRows($('replace-labels')),
      }),
    async (body) => {
      const m = replacing;
      let meta;
      try {
        meta = await state.client.replace(m.project, m.name, body, { ifMatchVersion: m.version });
      } catch (err) {
        if (err.code === 'version_mismatch') {
          err.message = `${err.message}. Someone changed “${m.name}” after version ${m.version}: close this form and open it again.`;
        }
        throw err;
      }
      notify(`Replaced the values of “${meta.name}”: now version ${meta.version}.`);
      await refreshDetails(meta);
      return meta;
    },
  );
}

// "Set one key"
function openSet() {
  const s = state.selected;
  if (!s) return;
  $('dlg-set-title').textContent = `Set one key of “${s.name}”`;
  $('set-keys').replaceChildren(...(s.keys || []).map((k) => h('option', { value: k })));
  $('set-value-box').replaceChildren(valueField('set-value').el);
  openDialog('dlg-set', 'set-key');
}

function setupSet() {
  $('act-set').addEventListener('click', openSet);
  submitter(
    'form-set',
    'set-error',
    () => {
      const pair = { key: $('set-key').value, value: readValue($('set-value-box').querySelector('.value-field')) };
      optionalEmpty([pair], $('set-allow-empty').checked);
      return F.setKeyRequest(pair);
    },
    async (body) => {
      const s = state.selected;
      const key = Object.keys(body.set)[0];
      const meta = await state.client.patch(s.project, s.name, body);
      notify(`Set key “${key}” of “${meta.name}”: now version ${meta.version}.`);
      await refreshDetails(meta);
      return meta;
    },
  );
}

// "Edit labels": a PATCH of the labels alone, with If-Match, keeping every value.
let labelling = null; // metadata read when the dialog opened

async function openLabels() {
  const s = state.selected;
  if (!s) return;
  const meta = await busy($('act-labels'), null, () => state.client.metadata(s.project, s.name));
  if (!meta) return;
  labelling = meta;
  $('dlg-labels-title').textContent = `Edit the labels of “${meta.name}”`;
  $('labels-hint').textContent =
    `Rows left empty or removed drop that label; the values are kept. Saving makes version ${meta.version + 1}, ` +
    `and is refused if the secret changed after version ${meta.version}.`;
  const labels = F.labelsToRows(meta.labels);
  $('labels-rows').replaceChildren(...(labels.length ? labels : [{}]).map((l) => kvRow('label', l)));
  openDialog('dlg-labels');
  const first = $('labels-rows').querySelector('.row-key');
  if (first) first.focus();
}

function setupLabels() {
  $('act-labels').addEventListener('click', openLabels);
  $('labels-add').addEventListener('click', () => {
    const r = kvRow('label');
    $('labels-rows').append(r);
    r.querySelector('input').focus();
  });
  submitter(
    'form-labels',
    'labels-error',
    () => F.labelsRequest({ labels: readRows($('labels-rows')) }),
    async (body) => {
      const m = labelling;
      const meta = await state.client.patch(m.project, m.name, body, { ifMatchVersion: m.version });
      notify(`Saved the labels of “${meta.name}”: now version ${meta.version}.`);
      await refreshDetails(meta);
      return meta;
    },
  );
}

// "Remove key"
function openRemove() {
  const s = state.selected;
  if (!s) return;
  $('dlg-remove-title').textContent = `Remove a key of “${s.name}”`;
  $('remove-key').replaceChildren(...(s.keys || []).map((k) => h('option', { value: k, text: k })));
  openDialog('dlg-remove', 'remove-key');
}

function setupRemove() {
  $('act-remove').addEventListener('click', openRemove);
  submitter(
    'form-remove',
    'remove-error',
    () => F.removeKeyRequest({ key: $('remove-key').value, keys: state.selected ? state.selected.keys : [] }),
    async (body) => {
      const s = state.selected;
      const meta = await state.client.patch(s.project, s.name, body);
      notify(`Removed key “${body.unset[0]}” of “${meta.name}”: now version ${meta.version}.`);
      await refreshDetails(meta);
      return meta;
    },
  );
}

// "Copy to another project"
function syncOverwrite() {
  const target = state.projects.find((p) => p.name === $('copy-project').value);
  const allowed = !!target && F.permissions(target.actions).overwrite;
  const box = $('copy-overwrite');
  box.disabled = !allowed;
  if (!allowed) box.checked = false;
}

function openCopy() {
  const s = state.selected;
  if (!s) return;
  $('dlg-copy-title').textContent = `Copy “${s.name}”`;
  const targets = F.copyTargets(state.projects);
  $('copy-project').replaceChildren(...targets.map((n) => h('option', { value: n, text: n === s.project ? `${n} (this project)` : n })));
  const other = targets.find((n) => n !== s.project);
  $('copy-project').value = other || targets[0] || '';
  syncOverwrite();
  openDialog('dlg-copy', 'copy-project');
}

function setupCopy() {
  $('act-copy').addEventListener('click', openCopy);
  $('copy-project').addEventListener('change', syncOverwrite);
  submitter(
    'form-copy',
    'copy-error',
    () =>
      F.copyRequest({
        fromProject: state.selected.project,
        name: state.selected.name,
        toProject: $('copy-project').value,
        as: $('copy-as').value,
        overwrite: $('copy-overwrite').checked,
      }),
    async (body) => {
      const s = state.selected;
      const meta = await state.client.copy(s.project, s.name, body);
      notify(`Copied “${s.name}” to “${meta.name}” in project “${meta.project}” (version ${meta.version}).`);
      putSecret(meta);
      return meta;
    },
  );
}

// "Delete"
function openDelete() {
  const s = state.selected;
  if (!s) return;
  $('dlg-delete-title').textContent = `Delete “${s.name}”?`;
  $('delete-text').textContent =
    `The secret “${s.name}” of project “${s.project}” will be deleted with all its versions. ` +
    'This cannot be undone.';
  $('delete-confirm').textContent = `Delete “${s.name}”`;
  openDialog('dlg-delete');
}

function setupDelete() {
  $('act-delete').addEventListener('click', openDelete);
  submitter(
    'form-delete',
    'delete-error',
    () => ({ ...state.selected }),
    async (s) => {
      try {
        // Delete what the user saw: refused if it changed since.
        await state.client.delete(s.project, s.name, { ifMatchVersion: s.version });
      } catch (err) {
        if (err.code === 'version_mismatch') {
          err.message = `${err.message}. “${s.name}” changed after version ${s.version}: review it before deleting.`;
        }
        throw err;
      }
      notify(`Deleted secret “${s.name}”.`);
      closeDetails();
      dropSecret(s.name);
      return true;
    },
  );
}

// --- start ---

function setup() {
  setupDialogs();
  setupAdd();
  setupReplace();
  setupSet();
  setupLabels();
  setupRemove();
  setupCopy();
  setupDelete();

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
  $('project').addEventListener('change', (ev) => selectProject(ev.target.value));
  $('filter-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    try {
      state.prefix = F.prefixFilter($('prefix').value);
    } catch (err) {
      fail(err);
      return;
    }
    clearAlert();
    closeDetails();
    loadSecrets(false);
  });
  $('clear-filter').addEventListener('click', () => {
    $('prefix').value = '';
    state.prefix = '';
    closeDetails();
    loadSecrets(false);
  });
  $('load-more').addEventListener('click', () => loadSecrets(true));
  $('details-close').addEventListener('click', () => {
    const name = state.selected && state.selected.name;
    closeDetails();
    const btn = name && [...$('secrets-body').querySelectorAll('button.link')].find((b) => b.textContent === name);
    if (btn) btn.focus();
  });
  $('alert-dismiss').addEventListener('click', () => clearAlert());

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
