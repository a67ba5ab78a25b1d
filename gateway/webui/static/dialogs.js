// dialogs.js: the dialogs of the details pane (add, replace values, set one
// key, edit labels, remove a key, copy, delete); the rollback's is in
// history.js. Their shared behaviour (errors next to fields, values wiped
// after every request and on close) is formkit.js's.

import * as F from './forms.js';
import { $, h } from './dom.js';
import { createForms, rowInput } from './formkit.js';
import { envPaste } from './envpaste.js';
import { kvRow, readRows, readValue, valueField } from './values.js';

/**
 * setupDialogs wires every dialog to the page's app (app.js): its state,
 * busy, notify, and the list and details functions. A write is sent inside
 * app.hold, so that live updates wait for its answer instead of reporting
 * the user's own change as someone else's. Answers the forms kit
 * (formkit.js) for the dialogs wired elsewhere (history.js).
 */
export function setupDialogs(app) {
  const { state, notify, putSecret, openDetails, refreshDetails, closeDetails, dropSecret } = app;
  const forms = createForms(app);
  const openDialog = forms.open;
  const submitter = forms.submitter;

  /** rowsLocator finds an error's input: its own field, or a row of pairs or labels. */
  const rowsLocator = (fields) => (e) => {
    if (e.field === 'data' && fields.pairs) return rowInput($(fields.pairs), e);
    if (e.field === 'labels' && fields.labels) return rowInput($(fields.labels), e);
    return fields[e.field] ? $(fields[e.field]) : null;
  };

  // "+ Add Secret"
  let addEnv = null;

  function openAdd() {
    $('add-pairs').replaceChildren(kvRow('pair'));
    $('add-labels').replaceChildren(kvRow('label'));
    addEnv.wipe();
    $('dlg-add-title').textContent = `Add a secret to “${state.project}”`;
    openDialog('dlg-add', 'add-name');
  }

  function setupAdd() {
    addEnv = envPaste({ mount: $('add-env'), box: $('add-pairs'), id: 'add-env' });
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
          pairs: readRows($('add-pairs')),
          allowEmpty: $('add-allow-empty').checked,
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
      rowsLocator({ name: 'add-name', pairs: 'add-pairs', labels: 'add-labels' }),
    );
  }

  // "Replace values"
  let replacing = null; // metadata read when the dialog opened: its version is the If-Match
  let replaceEnv = null;

  async function openReplace() {
    const s = state.selected;
    if (!s) return;
    app.startAction();
    const meta = await app.busy($('act-replace'), null, () => state.client.metadata(s.project, s.name));
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
    replaceEnv.wipe();
    openDialog('dlg-replace');
    const first = $('replace-pairs').querySelector('.row-value');
    if (first) first.focus();
  }

  function setupReplace() {
    replaceEnv = envPaste({ mount: $('replace-env'), box: $('replace-pairs'), id: 'replace-env' });
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
          pairs: readRows($('replace-pairs')),
          allowEmpty: $('replace-allow-empty').checked,
          labels: readRows($('replace-labels')),
        }),
      async (body) => {
        const m = replacing;
        let meta;
        try {
          meta = await state.client.replace(m.project, m.name, body, { ifMatchVersion: m.version });
        } catch (err) {
          if (err.code === 'version_mismatch') {
            err.message = `Someone changed “${m.name}” after version ${m.version}, the one this form started from: nothing was saved. Close the form and open it again`;
          }
          throw err;
        }
        notify(`Replaced the values of “${meta.name}”: now version ${meta.version}.`);
        await refreshDetails(meta);
        return meta;
      },
      rowsLocator({ pairs: 'replace-pairs', labels: 'replace-labels' }),
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
      () =>
        F.setKeyRequest({
          key: $('set-key').value,
          value: readValue($('set-value-box').querySelector('.value-field')),
          allowEmpty: $('set-allow-empty').checked,
        }),
      async (body) => {
        const s = state.selected;
        const key = Object.keys(body.set)[0];
        const meta = await state.client.patch(s.project, s.name, body);
        notify(`Set key “${key}” of “${meta.name}”: now version ${meta.version}.`);
        await refreshDetails(meta);
        return meta;
      },
      (e) => (e.field === 'set' ? $(e.part === 'value' ? 'set-value' : 'set-key') : null),
    );
  }

  // "Edit labels": a PATCH of the labels alone, with If-Match, keeping every value.
  let labelling = null; // metadata read when the dialog opened

  async function openLabels() {
    const s = state.selected;
    if (!s) return;
    app.startAction();
    const meta = await app.busy($('act-labels'), null, () => state.client.metadata(s.project, s.name));
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
        let meta;
        try {
          meta = await state.client.patch(m.project, m.name, body, { ifMatchVersion: m.version });
        } catch (err) {
          if (err.code === 'version_mismatch') {
            err.message = `Someone changed “${m.name}” after version ${m.version}, the one this form started from: nothing was saved. Close the form and open it again`;
          }
          throw err;
        }
        notify(`Saved the labels of “${meta.name}”: now version ${meta.version}.`);
        await refreshDetails(meta);
        return meta;
      },
      rowsLocator({ labels: 'labels-rows' }),
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
      rowsLocator({ unset: 'remove-key' }),
    );
  }

  // "Copy to another project"
  let suggested = ''; // the new name offered for a copy within the project

  /** syncCopy fits the form to the target: overwrite allowed or not, a new name needed or not. */
  function syncCopy() {
    const s = state.selected;
    const to = $('copy-project').value;
    const target = state.projects.find((p) => p.name === to);
    const allowed = !!target && F.permissions(target.actions).overwrite;
    const box = $('copy-overwrite');
    box.disabled = !allowed;
    if (!allowed) box.checked = false;
    const within = !!s && to === s.project;
    $('copy-as-label').textContent = within ? 'New name (needed within this project)' : 'New name (optional)';
    const as = $('copy-as');
    if (within && as.value.trim() === '') {
      suggested = `${s.name}-copy`.slice(0, 128);
      as.value = suggested;
    } else if (!within && as.value === suggested) {
      as.value = '';
    }
  }

  function openCopy() {
    const s = state.selected;
    if (!s) return;
    $('dlg-copy-title').textContent = `Copy “${s.name}”`;
    const targets = F.copyTargets(state.projects);
    $('copy-project').replaceChildren(...targets.map((n) => h('option', { value: n, text: n === s.project ? `${n} (this project)` : n })));
    // Another project when there is one; else this one, under a new name.
    const other = targets.find((n) => n !== s.project);
    $('copy-project').value = other || targets[0] || '';
    suggested = '';
    $('copy-as').value = '';
    syncCopy();
    openDialog('dlg-copy', other ? 'copy-project' : 'copy-as');
  }

  function setupCopy() {
    $('act-copy').addEventListener('click', openCopy);
    $('copy-project').addEventListener('change', syncCopy);
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
      rowsLocator({ to_project: 'copy-project', as: 'copy-as' }),
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
            err.message = `“${s.name}” changed after version ${s.version}, the one you saw: nothing was deleted. Look at it again before deleting`;
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

  forms.wire();
  setupAdd();
  setupReplace();
  setupSet();
  setupLabels();
  setupRemove();
  setupCopy();
  setupDelete();
  return forms;
}
