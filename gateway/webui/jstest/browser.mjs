// browser.mjs drives the web UI in a real browser (Debian's chromium, through
// puppeteer-core, which downloads no browser) against a real gateway, as
// people use it: an editor signs in, reads the empty list's help, adds a
// secret by pasting a PEM key and a CR LF value from the clipboard, typing
// a multi-line value, loading a file and generating a random value; the
// list follows a second client's writes; "Copy reference" copies a key's
// sg:// reference. browser-forms.mjs goes on: bad input said next to each
// field, a .env block pasted into Add Secret, replace, set and remove a
// key, labels, the version history and a rollback (and its conflict),
// copy and delete as admin, what a reader is shown, and the layout at
// 1280 and 390 pixels wide. After every step, no value typed is in the
// page's markup or storage; at the end, no console error or CSP violation
// was reported.
//
// internal/e2e/webui_test.go (TestWebUIBrowser) starts the gateway, runs
// this script, and reads the secrets back through the API as a workload
// would, byte for byte. Environment:
//
//   SECRETGATE_ADDR           http://127.0.0.1:PORT
//   SECRETGATE_EDITOR_TOKEN   editor on payments and billing
//   SECRETGATE_ADMIN_TOKEN    admin on every project
//   SECRETGATE_READER_TOKEN   reader on payments
//   SECRETGATE_PEM            a PEM block (LF line breaks) to paste
//   SECRETGATE_CRLF           a value with CR LF line breaks to paste
//   SECRETGATE_TYPED          a value with CR LF line breaks to type
//   SECRETGATE_FILE           a file whose exact content is a value
//   SECRETGATE_ENV_A          a one-line value, for a pasted .env block
//   SECRETGATE_ENV_MULTI      a two-line value (LF), for the same block
//   SECRETGATE_REPLACED       a value to type in Replace values and Set one key
//   SECRETGATE_CHROMIUM       the browser's executable
//   SECRETGATE_PUPPETEER_DIR  a directory whose node_modules holds puppeteer-core
//
// It prints one "ok N - step (ms)" line per step, never a value, then the
// step count and run time, and exits 0; or prints the failed step and
// exits 1.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

import { Client } from '../static/api.js';
import { Failure, TIMEOUT, check, createKit, errorOf, paste, signIn, waitStatus } from './browserkit.mjs';
import { formSteps } from './browser-forms.mjs';

const env = (k) => {
  const v = process.env[k];
  if (!v) {
    console.error(`missing environment variable ${k}`);
    process.exit(2);
  }
  return v;
};

const kit = createKit();
const addr = env('SECRETGATE_ADDR');
const tokens = { editor: env('SECRETGATE_EDITOR_TOKEN'), admin: env('SECRETGATE_ADMIN_TOKEN'), reader: env('SECRETGATE_READER_TOKEN') };
const pem = kit.secret(env('SECRETGATE_PEM'));
const crlf = kit.secret(env('SECRETGATE_CRLF'));
const typed = kit.secret(env('SECRETGATE_TYPED'));
const file = env('SECRETGATE_FILE');
kit.secret(readFileSync(file, 'utf8'));
const values = { envA: kit.secret(env('SECRETGATE_ENV_A')), envMulti: kit.secret(env('SECRETGATE_ENV_MULTI')), replaced: kit.secret(env('SECRETGATE_REPLACED')) };
const puppeteer = createRequire(path.join(env('SECRETGATE_PUPPETEER_DIR'), 'package.json'))('puppeteer-core');

async function main(page, context, browser) {
  const run = kit.run;
  await run('a browser drops line breaks from an input and reports CR LF as LF in a textarea', async () => {
    // Why the UI cannot simply use the form controls' values: a premise the
    // fake DOM of the unit tests copies.
    await page.goto(`${addr}/ui/`, { waitUntil: 'load' });
    const [input, textarea] = await page.evaluate(() => {
      const i = document.createElement('input');
      i.type = 'password';
      i.value = 'a\r\nb';
      const t = document.createElement('textarea');
      t.value = 'c\r\nd\re';
      return [i.value, t.value];
    });
    check(input === 'ab', `input value: ${JSON.stringify(input)}`);
    check(textarea === 'c\nd\ne', `textarea value: ${JSON.stringify(textarea)}`);
  });

  await run('sign in as editor: the empty project says how to add a secret, from the page and the CLI', async () => {
    await signIn(page, addr, tokens.editor);
    // billing, the first project, is empty.
    await page.waitForSelector('#secrets-empty:not([hidden])', { timeout: TIMEOUT });
    const s = await page.evaluate(() => ({
      title: document.getElementById('empty-title').textContent,
      text: document.getElementById('empty-text').textContent,
      command: document.getElementById('empty-command').textContent,
      add: !document.getElementById('add-secret').hidden,
      status: document.getElementById('status').textContent,
    }));
    check(s.title === 'No secrets in “billing” yet.' && /“\+ Add Secret”/.test(s.text) && s.add, `empty state: ${JSON.stringify(s)}`);
    check(s.command === 'secretgate secret create NAME key=value --project billing', `command: ${s.command}`);
    check(s.status === 'Signed in.', `status: ${s.status}`);
  });

  await run('project payments: the old status is gone, the sidebar says what an editor may do', async () => {
    await page.select('#project', 'payments');
    await page.waitForFunction(() => /project “payments”/.test(document.getElementById('secrets-caption').textContent), { timeout: TIMEOUT });
    const s = await page.evaluate(() => ({ status: document.getElementById('status').textContent, role: document.getElementById('role').textContent }));
    check(s.status === '', `status after choosing a project: ${s.status}`);
    check(/^In “payments” you may list secrets and their versions, add secrets, change them/.test(s.role), `role: ${s.role}`);
  });

  const row = (n) => `#add-pairs .row:nth-child(${n})`;
  const fieldState = (n) =>
    page.$eval(row(n), (r) => ({
      editor: r.querySelector('.row-value').localName,
      multi: r.querySelector('.value-multi').checked,
      eol: r.querySelector('.value-eol').value,
    }));

  await run('add secret: a PEM key pasted into the value field switches it to multi-line', async () => {
    await context.overridePermissions(new URL(addr).origin, ['clipboard-read', 'clipboard-write', 'clipboard-sanitized-write']);
    await page.click('#add-secret');
    await page.waitForSelector('#dlg-add[open]', { timeout: TIMEOUT });
    await page.type('#add-name', 'browser-multiline');
    await page.type(`${row(1)} .row-key`, 'pem');
    await paste(page, `${row(1)} .row-value`, pem);
    const s = await fieldState(1);
    check(s.editor === 'textarea' && s.multi && s.eol === 'lf', `after pasting the PEM: ${JSON.stringify(s)}`);
  });

  await run('a CR LF value pasted: multi-line with CR LF line breaks', async () => {
    await page.click('#add-pair');
    await page.type(`${row(2)} .row-key`, 'crlf');
    await paste(page, `${row(2)} .row-value`, crlf);
    const s = await fieldState(2);
    check(s.editor === 'textarea' && s.multi && s.eol === 'crlf', `after pasting CR LF: ${JSON.stringify(s)}`);
  });

  await run('a value typed with Enter, CR LF chosen', async () => {
    await page.click('#add-pair');
    await page.type(`${row(3)} .row-key`, 'typed');
    await page.click(`${row(3)} .value-multi`);
    await page.select(`${row(3)} .value-eol`, 'crlf');
    // page.type presses Enter for "\n"; CR is not typed.
    await page.type(`${row(3)} .row-value`, typed.replace(/\r\n/g, '\n'));
    const s = await fieldState(3);
    check(s.editor === 'textarea' && s.eol === 'crlf', `typed field: ${JSON.stringify(s)}`);
  });

  await run('a value loaded from a file', async () => {
    await page.click('#add-pair');
    await page.type(`${row(4)} .row-key`, 'file');
    const input = await page.$(`${row(4)} .value-file`);
    await input.uploadFile(file);
    await page.waitForFunction((sel) => /sent exactly as it is/.test(document.querySelector(sel).textContent), { timeout: TIMEOUT }, `${row(4)} .value-note`);
  });

  await run('"Generate…": a too short length is refused next to it; 40 hexadecimal characters go into the hidden field', async () => {
    await page.click('#add-pair');
    await page.type(`${row(5)} .row-key`, 'generated');
    await page.click(`${row(5)} .gen-open`);
    await page.waitForSelector(`${row(5)} .gen-panel:not([hidden])`, { timeout: TIMEOUT });
    await page.click(`${row(5)} .gen-length`, { clickCount: 3 });
    await page.type(`${row(5)} .gen-length`, '2');
    await page.click(`${row(5)} .gen-go`);
    const e = await errorOf(page, `${row(5)} .gen-length`);
    check(e.text === 'Enter a length from 4 to 1024.' && e.invalid && e.visible, `length error: ${JSON.stringify(e)}`);
    await page.click(`${row(5)} .gen-length`, { clickCount: 3 });
    await page.type(`${row(5)} .gen-length`, '40');
    await page.select(`${row(5)} .gen-alphabet`, 'hex');
    await page.click(`${row(5)} .gen-go`);
    const g = await page.$eval(row(5), (r) => ({ type: r.querySelector('.row-value').type, value: r.querySelector('.row-value').value, note: r.querySelector('.value-note').textContent }));
    kit.secret(g.value);
    check(g.type === 'password' && /^[0-9a-f]{40}$/.test(g.value), `the generated value: ${g.type}, ${g.value.length} characters`);
    check(/^Generated a random value: 40 characters \(hexadecimal\), about 160 bits/.test(g.note), `note: ${g.note}`);
  });

  await run('save', async () => {
    await page.click('#form-add button[type="submit"]');
    await waitStatus(page, /^Created secret “browser-multiline” \(version 1\)/);
    const left = await page.evaluate(() => [...document.querySelectorAll('textarea, input[type="password"]')].map((e) => e.value).join(''));
    check(left === '', 'the value fields are empty after saving');
  });

  // A second client: its own connection to the gateway, as another person's.
  const other = new Client({ baseURL: addr, token: tokens.editor });
  const rowOf = (name) =>
    page.evaluate((n) => {
      const tr = [...document.querySelectorAll('#secrets-body tr')].find((r) => r.querySelector('th').textContent === n);
      return tr ? [...tr.children].map((c) => c.textContent) : null;
    }, name);
  const waitRow = (name, test, what) =>
    page
      .waitForFunction(
        (n, keys, version) => {
          const tr = [...document.querySelectorAll('#secrets-body tr')].find((r) => r.querySelector('th').textContent === n);
          if (version === null) return !tr;
          return !!tr && tr.children[1].textContent === keys && tr.children[2].textContent === version;
        },
        { timeout: TIMEOUT },
        name,
        test.keys ?? null,
        test.version ?? null,
      )
      .catch(async () => {
        throw new Failure(`${what}: the row of ${name} is ${JSON.stringify(await rowOf(name))}`);
      });

  await run('the list follows what a second client writes, without a reload', async () => {
    await page.waitForFunction(() => document.getElementById('live-state').textContent === 'Live', { timeout: TIMEOUT });
    await page.evaluate(() => {
      window.secretgateNoReload = true; // gone if the page reloads
    });
    await other.create('payments', { name: 'browser-live', data: { k: 'one' } });
    await waitRow('browser-live', { keys: 'k', version: '1' }, 'after a create');
    await other.replace('payments', 'browser-live', { data: { k: 'two', k2: 'three' } });
    await waitRow('browser-live', { keys: 'k, k2', version: '2' }, 'after a PUT');
    check(await page.evaluate(() => window.secretgateNoReload === true), 'the page was not reloaded');
  });

  await run('the open secret changed by someone else: a notice, and the open form keeps what was typed', async () => {
    await page.evaluate(() => [...document.querySelectorAll('#secrets-body button.link')].find((b) => b.textContent === 'browser-live').click());
    await page.waitForFunction(() => document.getElementById('details-title').textContent === 'browser-live', { timeout: TIMEOUT });
    await page.click('#act-set');
    await page.waitForSelector('#dlg-set[open]', { timeout: TIMEOUT });
    await page.type('#set-key', 'draft-key');
    await other.replace('payments', 'browser-live', { data: { k: 'four' } });
    await page.waitForSelector('#details-stale:not([hidden])', { timeout: TIMEOUT });
    const s = await page.evaluate(() => ({
      notice: document.getElementById('details-stale-text').textContent,
      dialog: document.getElementById('dlg-set').open,
      key: document.getElementById('set-key').value,
      focused: document.activeElement && document.activeElement.id,
    }));
    check(s.notice === '“browser-live” was changed by someone else (now version 3) — reload to see it.', `notice: ${s.notice}`);
    check(s.dialog && s.key === 'draft-key' && s.focused === 'set-key', `the form: ${JSON.stringify(s)}`);
    await waitRow('browser-live', { keys: 'k', version: '3' }, 'behind the form');
    await page.click('#dlg-set button.cancel');
    await page.click('#details-reload');
    await page.waitForSelector('#details-stale', { hidden: true, timeout: TIMEOUT });
    await other.delete('payments', 'browser-live');
    await waitRow('browser-live', {}, 'after a delete');
    await page.waitForFunction(() => /deleted by someone else/.test(document.getElementById('details-stale-text').textContent), { timeout: TIMEOUT });
    await page.click('#details-reload');
  });

  const ref = 'sg://payments/browser-multiline/pem';
  const openMultiline = async (p) => {
    await p.evaluate(() => [...document.querySelectorAll('#secrets-body button.link')].find((b) => b.textContent === 'browser-multiline').click());
    await p.waitForSelector(`#details-meta button[aria-label="Copy reference ${ref}"]`, { timeout: TIMEOUT });
  };

  await run('"Copy reference" puts the key\'s sg:// reference on the clipboard', async () => {
    await page.evaluate(() => navigator.clipboard.writeText('something else'));
    await openMultiline(page);
    await page.click(`#details-meta button[aria-label="Copy reference ${ref}"]`);
    await page.waitForFunction((r) => document.getElementById('status').textContent === `Copied the reference ${r} to the clipboard.`, { timeout: TIMEOUT }, ref);
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    check(copied === ref, `the clipboard holds ${JSON.stringify(copied)}`);
    const label = await page.$eval(`#details-meta button[aria-label="Copy reference ${ref}"]`, (b) => b.textContent);
    check(label === 'Copied ✓', `the button says ${JSON.stringify(label)}`);
  });

  await run('without clipboard access, the reference is selected in a read-only field, and Ctrl+C copies it', async () => {
    // As on a plain-HTTP origin other than localhost, where browsers give
    // no navigator.clipboard.
    await page.evaluate(() => navigator.clipboard.writeText('something else'));
    const bare = kit.watch(await browser.newPage());
    try {
      await bare.evaluateOnNewDocument(() => {
        Object.defineProperty(Navigator.prototype, 'clipboard', { get: () => undefined, configurable: true });
      });
      await signIn(bare, addr, tokens.editor, 'payments');
      await openMultiline(bare);
      await bare.click(`#details-meta button[aria-label="Copy reference ${ref}"]`);
      await bare.waitForSelector('#details-meta .ref-input', { timeout: TIMEOUT });
      const f = await bare.evaluate(() => {
        const i = document.activeElement;
        return { cls: i.className, value: i.value, readOnly: i.readOnly, start: i.selectionStart, end: i.selectionEnd, status: document.getElementById('status').textContent };
      });
      check(f.cls === 'ref-input' && f.readOnly, `the focused field: ${JSON.stringify(f)}`);
      check(f.value === ref && f.start === 0 && f.end === ref.length, `selected: ${JSON.stringify(f)}`);
      check(/press Ctrl\+C/.test(f.status), `status: ${f.status}`);
      await bare.keyboard.down('Control');
      await bare.keyboard.press('KeyC', { commands: ['Copy'] });
      await bare.keyboard.up('Control');
      await page.bringToFront(); // reading the clipboard needs a focused page
      const copied = await page.evaluate(() => navigator.clipboard.readText());
      check(copied === ref, `after Ctrl+C the clipboard holds ${JSON.stringify(copied)}`);
    } finally {
      await bare.close();
    }
  });

  await formSteps({ kit, page, browser, addr, tokens, values, other });
}

const started = performance.now();
const browser = await puppeteer.launch({
  executablePath: env('SECRETGATE_CHROMIUM'),
  headless: true,
  // CI runs as root, where Chromium's sandbox cannot start; the page is the
  // gateway's own, on 127.0.0.1.
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--no-default-browser-check'],
  timeout: 60000,
});
let code = 0;
try {
  const context = browser.defaultBrowserContext();
  const page = kit.watch(await browser.newPage());
  await page.setViewport({ width: 1280, height: 900 });
  page.setDefaultTimeout(TIMEOUT);
  // Every console error and uncaught exception, CSP violations included.
  const problems = [];
  const listen = (p) => {
    p.on('console', (m) => {
      // A refused request (400, 404, 409, 412) is logged by the browser itself; the steps expect those.
      if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of (400|404|409|412) /.test(m.text())) problems.push(m.text());
    });
    p.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
  };
  listen(page);
  browser.on('targetcreated', async (t) => {
    const p = await t.page();
    if (p) listen(p);
  });
  await main(page, context, browser);
  await kit.run('no console error and no Content-Security-Policy violation in any page', async () => {
    check(problems.length === 0, `console: ${problems.slice(0, 3).join(' | ')}`);
  });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`webui browser: all steps passed: ${kit.steps.length} steps in ${seconds} s`);
} catch (e) {
  // Failure messages name fields and states, never values.
  const what = e instanceof Failure ? e.message : String(e && e.message ? e.message : e);
  console.error(`not ok - ${kit.step}: ${what}`);
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
