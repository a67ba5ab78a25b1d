// dialogs.js: the dialogs of the details pane (add, replace values, set one
// key, edit labels, remove a key, copy, delete). Every typed value is wiped
// once its request was sent, whatever the outcome, and when a dialog closes.

import * as F from './forms.js';
import { $, h } from './dom.js';
import { kvRow, readRows, readValue, valueField, wipeValues } from './values.js';

/**
 * setupDialogs wires every dialog to the page's app (app.js): its state,
 * busy, notify, and the list and details functions. A write is sent inside
 * app.hold, so that live updates wait for its answer instead of reporting
 * the user's own change as someone else's.
 */
export function setupDialogs(app) {
  const { state, busy, notify, putSecret, openDetails, refreshDetails, closeDetails, dropSecret } = app;

  function openDialog(id, focusId) {
    const d = $(id);
    const err = d.querySelector('.alert');
    if (err) err.textContent = '';
    d.showModal();
    if (focusId) $(focusId).focus();
  }

  function wireDialogs() {
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
          return await app.hold(() => send(body));
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

  wireDialogs();
  setupAdd();
  setupReplace();
  setupSet();
  setupLabels();
  setupRemove();
  setupCopy();
  setupDelete();
}
