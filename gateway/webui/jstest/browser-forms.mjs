// browser-forms.mjs: the second half of the real-browser test (browser.mjs
// runs it): bad input said next to each field, a .env block pasted into
// Add Secret, replace, set and remove a key, labels, the version history
// and a rollback (with a conflict), copy and delete as admin, what a
// reader is shown, and the layout at 1280 and 390 pixels wide. Not a test
// file itself.

import { TIMEOUT, check, errorOf, layout, openSecret, paste, signIn, waitStatus } from './browserkit.mjs';

export async function formSteps({ kit, page, addr, tokens, values, other }) {
  const run = kit.run;
  const row = (box, n) => `#${box} .row:nth-child(${n})`;
  // Requests the page sends: a refused form sends none.
  const sent = [];
  page.on('request', (r) => {
    if (r.method() !== 'GET' && new URL(r.url()).pathname.startsWith('/v1/')) sent.push(`${r.method()} ${new URL(r.url()).pathname}`);
  });
  const text = (sel) => page.$eval(sel, (e) => e.textContent);
  const field = async (sel, want) => {
    const e = await errorOf(page, sel);
    check(e.text === want && e.invalid && e.visible, `next to ${sel}: ${JSON.stringify(e)}, want ${JSON.stringify(want)}`);
  };
  const clear = async (sel) => {
    await page.click(sel, { clickCount: 3 });
    await page.keyboard.press('Backspace');
  };
  const dialog = async (button, id) => {
    // The dialog of the step before closes once its request is answered.
    await page.waitForFunction(() => !document.querySelector('dialog[open]'), { timeout: TIMEOUT });
    await page.click(button);
    await page.waitForSelector(`#${id}[open]`, { timeout: TIMEOUT });
  };
  const history = () =>
    page.$$eval('#versions-body li', (items) => items.map((li) => `${li.querySelector('.version-num').textContent}: ${li.querySelector('.version-changes').textContent}`));

  await run('bad input in Add Secret: each mistake said next to its field, in plain words, and nothing sent', async () => {
    await dialog('#add-secret', 'dlg-add');
    check((await text('#status')) === '', 'opening the dialog cleared the status line');
    await page.type('#add-name', 'my secret');
    await page.type(`${row('add-pairs', 1)} .row-key`, 'host');
    await page.type(`${row('add-pairs', 1)} .row-value`, kit.secret(`${values.replaced}-bad1`));
    await page.click('#add-pair');
    await page.type(`${row('add-pairs', 2)} .row-key`, 'host');
    await page.type(`${row('add-pairs', 2)} .row-value`, kit.secret(`${values.replaced}-bad2`));
    await page.click('#add-pair');
    await page.type(`${row('add-pairs', 3)} .row-key`, 'port');
    await page.type(`${row('add-labels', 1)} .row-key`, 'Env');
    await page.type(`${row('add-labels', 1)} .row-value`, 'prod');
    const before = sent.length;
    await page.click('#form-add button[type="submit"]');
    await field('#add-name', 'A name cannot contain spaces: use letters, digits, “_” or “-”.');
    await field(`${row('add-pairs', 2)} .row-key`, '“host” is given twice: each key once.');
    await field(`${row('add-pairs', 3)} .row-value`, 'Enter a value, remove this row, or tick “Allow empty values”.');
    await field(`${row('add-labels', 1)} .row-key`, 'Label names are lower case: “env”, not “Env”.');
    check((await text('#add-error')) === 'Please correct the 4 fields marked below.', `summary: ${await text('#add-error')}`);
    check(sent.length === before, `sent: ${sent.slice(before)}`);
    check((await page.evaluate(() => document.activeElement.id)) === 'add-name', 'the first field in error has the focus');
    await page.click('#dlg-add button.cancel');
  });

  await run('a .env block pasted into a key field fills the rows, a multi-line value included; saved', async () => {
    await dialog('#add-secret', 'dlg-add');
    await page.type('#add-name', 'browser-env');
    const block = `# pasted from .env\nexport A=${values.envA}\nMULTI="${values.envMulti}" # two lines\n`;
    await paste(page, `${row('add-pairs', 1)} .row-key`, block);
    await page.waitForFunction(() => document.querySelectorAll('#add-pairs .row').length === 2, { timeout: TIMEOUT });
    const s = await page.$$eval('#add-pairs .row', (rows) => rows.map((r) => [r.querySelector('.row-key').value, r.querySelector('.row-value').localName]));
    check(JSON.stringify(s) === JSON.stringify([['A', 'input'], ['MULTI', 'textarea']]), `rows: ${JSON.stringify(s)}`);
    check((await text('#add-env .env-note')) === 'Filled 2 keys from the .env block: A, MULTI (1 multi-line).', `note: ${await text('#add-env .env-note')}`);
    await page.type(`${row('add-labels', 1)} .row-key`, 'team');
    await page.type(`${row('add-labels', 1)} .row-value`, 'pay');
    await page.click('#form-add button[type="submit"]');
    await waitStatus(page, /^Created secret “browser-env” \(version 1\)/);
  });

  await run('1280 px wide, the details open: nothing overflows or is clipped, no name or time wraps', async () => {
    await openSecret(page, 'browser-env');
    const l = await layout(page);
    check(l.overflow <= 0, `the page is ${l.overflow} px too wide`);
    check(l.clipped.length === 0, `clipped cells: ${l.clipped.join(' | ')}`);
    check(l.wrapped.length === 0, `wrapped: ${l.wrapped.join(' | ')}`);
    check(l.ellipsisWithoutTitle.length === 0, `cut without a title: ${l.ellipsisWithoutTitle.join(' | ')}`);
    check(l.select.room >= l.select.widest, `the project select has ${l.select.room} px for ${l.select.widest} px of text`);
    const three = await page.$eval('#workspace', (w) => getComputedStyle(w).gridTemplateColumns.split(' ').length);
    check(three === 3, `sidebar, list and details side by side: ${three} columns`);
  });

  await run('replace values: every key again, saved with If-Match', async () => {
    await dialog('#act-replace', 'dlg-replace');
    const keys = await page.$$eval('#replace-pairs .row-key', (ks) => ks.map((k) => k.value));
    check(keys.join(',') === 'A,MULTI', `prefilled keys: ${keys}`);
    await page.type(`${row('replace-pairs', 1)} .row-value`, values.replaced);
    await page.type(`${row('replace-pairs', 2)} .row-value`, values.replaced);
    await page.click('#form-replace button[type="submit"]');
    await waitStatus(page, /^Replaced the values of “browser-env”: now version 2\.$/);
  });

  await run('set one key: an empty value is refused in this dialog’s words; then set', async () => {
    await dialog('#act-set', 'dlg-set');
    await page.type('#set-key', 'NEWKEY');
    const before = sent.length;
    await page.click('#form-set button[type="submit"]');
    await field('#set-value', 'Enter a value, or tick “Allow an empty value”.');
    check((await text('label[for="set-allow-empty"]')) === 'Allow an empty value', 'the box is named as the message says');
    check(sent.length === before, 'nothing sent');
    await page.type('#set-value', values.replaced);
    await page.click('#form-set button[type="submit"]');
    await waitStatus(page, /^Set key “NEWKEY” of “browser-env”: now version 3\.$/);
  });

  await run('remove a key', async () => {
    await dialog('#act-remove', 'dlg-remove');
    await page.select('#remove-key', 'A');
    await page.click('#form-remove button[type="submit"]');
    await waitStatus(page, /^Removed key “A” of “browser-env”: now version 4\.$/);
  });

  await run('labels: a capitalised name is refused next to it; then saved', async () => {
    await dialog('#act-labels', 'dlg-labels');
    await page.click('#labels-add');
    await page.type(`${row('labels-rows', 2)} .row-key`, 'Env');
    await page.type(`${row('labels-rows', 2)} .row-value`, 'prod');
    await page.click('#form-labels button[type="submit"]');
    await field(`${row('labels-rows', 2)} .row-key`, 'Label names are lower case: “env”, not “Env”.');
    await clear(`${row('labels-rows', 2)} .row-key`);
    await page.type(`${row('labels-rows', 2)} .row-key`, 'env');
    await page.click('#form-labels button[type="submit"]');
    await waitStatus(page, /^Saved the labels of “browser-env”: now version 5\.$/);
  });

  await run('the history says which keys each version added or removed', async () => {
    await page.waitForFunction(() => document.querySelectorAll('#versions-body li').length === 5, { timeout: TIMEOUT });
    const h = await history();
    const want = [
      'Version 5: Same keys as version 4: values or labels changed.',
      'Version 4: Removed key A.',
      'Version 3: Added key NEWKEY.',
      'Version 2: Same keys as version 1: values or labels changed.',
      'Version 1: Created with A and MULTI.',
    ];
    check(JSON.stringify(h) === JSON.stringify(want), `history: ${JSON.stringify(h)}`);
  });

  await run('roll back, while someone else writes: refused with If-Match, said in plain words', async () => {
    await dialog('#versions-body li[data-version="1"] button.rollback', 'dlg-rollback');
    await other.patch('payments', 'browser-env', { set: { OTHER: kit.secret(`${values.replaced}-other`) } });
    await page.click('#rollback-confirm');
    await page.waitForFunction(() => document.getElementById('rollback-error').textContent !== '', { timeout: TIMEOUT });
    const e = await text('#rollback-error');
    check(/^Someone changed “browser-env” after version 5, the one you saw: nothing was rolled back\./.test(e), `error: ${e}`);
    await page.click('#dlg-rollback button.cancel');
    await page.waitForSelector('#details-stale:not([hidden])', { timeout: TIMEOUT });
    await page.click('#details-reload');
    await page.waitForFunction(() => document.querySelectorAll('#versions-body li').length === 6, { timeout: TIMEOUT });
  });

  await run('roll back to version 1: a new version of its values', async () => {
    await dialog('#versions-body li[data-version="1"] button.rollback', 'dlg-rollback');
    const t = await text('#rollback-text');
    check(/^Version 1’s values \(keys A and MULTI\) will be saved again as a new version 7 of “browser-env”/.test(t), `text: ${t}`);
    await page.click('#rollback-confirm');
    await waitStatus(page, /^Rolled back “browser-env” to version 1: now version 7\.$/);
    await page.waitForFunction(() => document.querySelector('#versions-body li').getAttribute('data-version') === '7', { timeout: TIMEOUT });
    const top = (await history())[0];
    check(top === 'Version 7: Added key A; removed keys NEWKEY and OTHER.', `history: ${top}`);
  });

  await run('admin: copy to another project, then within this one (“New name” must differ, said next to it)', async () => {
    await page.click('#sign-out');
    await signIn(page, addr, tokens.admin, 'payments');
    await openSecret(page, 'browser-env');
    await dialog('#act-copy', 'dlg-copy');
    check((await page.$eval('#copy-project', (s) => s.value)) === 'billing', 'another project first');
    await page.click('#form-copy button[type="submit"]');
    await waitStatus(page, /^Copied “browser-env” to “browser-env” in project “billing” \(version 1\)\.$/);
    await dialog('#act-copy', 'dlg-copy');
    await page.select('#copy-project', 'payments');
    check((await page.$eval('#copy-as', (i) => i.value)) === 'browser-env-copy', 'a new name is offered');
    await clear('#copy-as');
    await page.type('#copy-as', 'browser-env');
    await page.click('#form-copy button[type="submit"]');
    await field('#copy-as', 'Within project “payments” the copy needs a name other than “browser-env”.');
    await clear('#copy-as');
    await page.type('#copy-as', 'browser-env-copy');
    await page.click('#form-copy button[type="submit"]');
    await waitStatus(page, /^Copied “browser-env” to “browser-env-copy” in project “payments” \(version 1\)\.$/);
  });

  await run('delete, after a confirmation naming the secret', async () => {
    await openSecret(page, 'browser-env-copy');
    await dialog('#act-delete', 'dlg-delete');
    check((await text('#delete-confirm')) === 'Delete “browser-env-copy”', 'the button names the secret');
    await page.click('#delete-confirm');
    await waitStatus(page, /^Deleted secret “browser-env-copy”\.$/);
    await page.waitForFunction(() => ![...document.querySelectorAll('#secrets-body button.link')].some((b) => b.textContent === 'browser-env-copy'), { timeout: TIMEOUT });
  });

  await run('a reader is told what it may do, and shown no write button', async () => {
    await page.click('#sign-out');
    await signIn(page, addr, tokens.reader, 'payments');
    const role = await text('#role');
    check(/^In “payments” you may list secrets and their versions\. You cannot add or change secrets here/.test(role), `role: ${role}`);
    await openSecret(page, 'browser-env');
    const s = await page.evaluate(() => ({
      shown: ['add-secret', 'act-replace', 'act-set', 'act-remove', 'act-labels', 'act-copy', 'act-delete'].filter((id) => !document.getElementById(id).hidden),
      rollbacks: document.querySelectorAll('#versions-body button').length,
      hint: document.getElementById('details-hint').textContent,
    }));
    check(s.shown.length === 0 && s.rollbacks === 0, `buttons: ${JSON.stringify(s)}`);
    check(/^Values are never shown here, and your role in this project cannot change them/.test(s.hint), `hint: ${s.hint}`);
  });

  await run('390 px wide: one column, rows as cards; nothing overflows or is clipped, the project select fits', async () => {
    await page.setViewport({ width: 390, height: 844 });
    await page.click('#sign-out');
    await signIn(page, addr, tokens.editor, 'payments');
    for (const when of ['the list', 'the details']) {
      if (when === 'the details') await openSecret(page, 'browser-multiline');
      const l = await layout(page);
      check(l.overflow <= 0, `${when}: the page is ${l.overflow} px too wide`);
      check(l.clipped.length === 0, `${when}: clipped: ${l.clipped.join(' | ')}`);
      check(l.wrapped.length === 0, `${when}: wrapped: ${l.wrapped.join(' | ')}`);
      check(l.ellipsisWithoutTitle.length === 0, `${when}: cut without a title: ${l.ellipsisWithoutTitle.join(' | ')}`);
      check(l.select.room >= l.select.widest, `${when}: the project select has ${l.select.room} px for ${l.select.widest} px of text`);
    }
    const cards = await page.$eval('#secrets-body tr', (tr) => getComputedStyle(tr).display);
    check(cards === 'block', `rows as cards: display ${cards}`);
  });

  await run('390 px wide: Add Secret with the .env panel and the generator open fits the screen', async () => {
    await dialog('#add-secret', 'dlg-add');
    await page.click('#add-env .env-open');
    await page.click(`${row('add-pairs', 1)} .gen-open`);
    const l = await layout(page);
    check(l.dialog <= 0 && l.overflow <= 0, `the dialog is ${l.dialog} px, the page ${l.overflow} px too wide`);
    await page.click('#dlg-add button.cancel');
    await page.setViewport({ width: 1280, height: 900 });
  });
}
