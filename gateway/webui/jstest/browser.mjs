// browser.mjs drives the web UI in a real browser (Debian's chromium, through
// puppeteer-core, which downloads no browser) against a real gateway: a
// person signs in, pastes a PEM key and a CR LF value from the clipboard
// into value fields, types a multi-line value with CR LF line breaks, and
// loads a file with mixed line breaks, then saves the secret. Then a second
// client writes through the API while the list is open, and the list
// follows without a reload; "Copy reference" puts a key's sg:// reference
// on the clipboard, or (without clipboard access) selects it for Ctrl+C.
// internal/e2e/webui_test.go (TestWebUIBrowser) starts the gateway, runs
// this script, and reads the secret back through the API as a workload
// would, byte for byte. Environment:
//
//   SECRETGATE_ADDR           http://127.0.0.1:PORT
//   SECRETGATE_EDITOR_TOKEN   editor on payments
//   SECRETGATE_PEM            a PEM block (LF line breaks) to paste
//   SECRETGATE_CRLF           a value with CR LF line breaks to paste
//   SECRETGATE_TYPED          a value with CR LF line breaks to type
//   SECRETGATE_FILE           a file whose exact content is a value
//   SECRETGATE_CHROMIUM       the browser's executable
//   SECRETGATE_PUPPETEER_DIR  a directory whose node_modules holds puppeteer-core
//
// It prints one "ok - step" line per step, never a value, and exits 0; or
// prints the failed step and exits 1.

import { createRequire } from 'node:module';
import path from 'node:path';

import { Client } from '../static/api.js';

const env = (k) => {
  const v = process.env[k];
  if (!v) {
    console.error(`missing environment variable ${k}`);
    process.exit(2);
  }
  return v;
};

const addr = env('SECRETGATE_ADDR');
const token = env('SECRETGATE_EDITOR_TOKEN');
const pem = env('SECRETGATE_PEM');
const crlf = env('SECRETGATE_CRLF');
const typed = env('SECRETGATE_TYPED');
const file = env('SECRETGATE_FILE');
const puppeteer = createRequire(path.join(env('SECRETGATE_PUPPETEER_DIR'), 'package.json'))('puppeteer-core');

class Failure extends Error {}

function check(cond, what) {
  if (!cond) throw new Failure(what);
}

let step = '';
async function run(name, fn) {
  step = name;
  await fn();
  console.log(`ok - ${name}`);
}

const TIMEOUT = 15000;

async function main(page, context, browser) {
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

  await run('sign in as editor, project payments', async () => {
    await page.waitForSelector('#sign-in:not([hidden])', { timeout: TIMEOUT });
    await page.type('#token', token);
    await page.click('#sign-in-form button[type="submit"]');
    await page.waitForSelector('#workspace:not([hidden])', { timeout: TIMEOUT });
    await page.select('#project', 'payments');
    await page.waitForFunction(() => /project “payments”/.test(document.getElementById('secrets-caption').textContent), { timeout: TIMEOUT });
  });

  // paste puts text on the clipboard and pastes it with the keyboard into the element.
  const paste = async (selector, text) => {
    await page.evaluate((t) => navigator.clipboard.writeText(t), text);
    await page.focus(selector);
    await page.keyboard.down('Control');
    await page.keyboard.press('KeyV');
    await page.keyboard.up('Control');
  };
  const row = (n) => `#add-pairs .row:nth-child(${n})`;
  const fieldState = (n) =>
    page.$eval(row(n), (r) => ({
      editor: r.querySelector('.row-value').localName,
      multi: r.querySelector('.value-multi').checked,
      eol: r.querySelector('.value-eol').value,
      note: r.querySelector('.value-note').textContent,
    }));

  await run('add secret: a PEM key pasted into the value field switches it to multi-line', async () => {
    await context.overridePermissions(new URL(addr).origin, ['clipboard-read', 'clipboard-write', 'clipboard-sanitized-write']);
    await page.click('#add-secret');
    await page.waitForSelector('#dlg-add[open]', { timeout: TIMEOUT });
    await page.type('#add-name', 'browser-multiline');
    await page.type(`${row(1)} .row-key`, 'pem');
    await paste(`${row(1)} .row-value`, pem);
    const s = await fieldState(1);
    check(s.editor === 'textarea' && s.multi && s.eol === 'lf', `after pasting the PEM: ${JSON.stringify({ ...s, note: undefined })}`);
  });

  await run('a CR LF value pasted: multi-line with CR LF line breaks', async () => {
    await page.click('#add-pair');
    await page.type(`${row(2)} .row-key`, 'crlf');
    await paste(`${row(2)} .row-value`, crlf);
    const s = await fieldState(2);
    check(s.editor === 'textarea' && s.multi && s.eol === 'crlf', `after pasting CR LF: ${JSON.stringify({ ...s, note: undefined })}`);
  });

  await run('a value typed with Enter, CR LF chosen', async () => {
    await page.click('#add-pair');
    await page.type(`${row(3)} .row-key`, 'typed');
    await page.click(`${row(3)} .value-multi`);
    await page.select(`${row(3)} .value-eol`, 'crlf');
    // page.type presses Enter for "\n"; CR is not typed.
    await page.type(`${row(3)} .row-value`, typed.replace(/\r\n/g, '\n'));
    const s = await fieldState(3);
    check(s.editor === 'textarea' && s.eol === 'crlf', `typed field: ${JSON.stringify({ ...s, note: undefined })}`);
  });

  await run('a value loaded from a file', async () => {
    await page.click('#add-pair');
    await page.type(`${row(4)} .row-key`, 'file');
    const input = await page.$(`${row(4)} .value-file`);
    await input.uploadFile(file);
    await page.waitForFunction((sel) => /sent exactly as it is/.test(document.querySelector(sel).textContent), { timeout: TIMEOUT }, `${row(4)} .value-note`);
  });

  await run('save', async () => {
    await page.click('#form-add button[type="submit"]');
    await page.waitForFunction(() => /Created secret “browser-multiline” \(version 1\)/.test(document.getElementById('status').textContent), { timeout: TIMEOUT });
    const left = await page.evaluate(() => [...document.querySelectorAll('textarea, input[type="password"]')].map((e) => e.value).join(''));
    check(left === '', 'the value fields are empty after saving');
  });

  // A second client: its own connection to the gateway, as another person's.
  const other = new Client({ baseURL: addr, token });
  const rowOf = (name) =>
    page.evaluate((n) => {
      const tr = [...document.querySelectorAll('#secrets-body tr')].find((r) => r.querySelector('th').textContent === n);
      return tr ? [...tr.children].map((c) => c.textContent) : null;
    }, name);
  const waitRow = (name, test, what) =>
    page.waitForFunction(
      (n, keys, version) => {
        const tr = [...document.querySelectorAll('#secrets-body tr')].find((r) => r.querySelector('th').textContent === n);
        if (version === null) return !tr;
        return !!tr && tr.children[1].textContent === keys && tr.children[2].textContent === version;
      },
      { timeout: TIMEOUT },
      name,
      test.keys ?? null,
      test.version ?? null,
    ).catch(async () => {
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
    const open = await page.$$('#secrets-body button.link');
    let button = null;
    for (const b of open) if ((await b.evaluate((e) => e.textContent)) === 'browser-live') button = b;
    check(button, 'a row for browser-live');
    await button.click();
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
    const rows = await p.$$('#secrets-body button.link');
    for (const b of rows) {
      if ((await b.evaluate((e) => e.textContent)) === 'browser-multiline') {
        await b.click();
        break;
      }
    }
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
    const bare = await browser.newPage();
    try {
      await bare.evaluateOnNewDocument(() => {
        Object.defineProperty(Navigator.prototype, 'clipboard', { get: () => undefined, configurable: true });
      });
      await bare.goto(`${addr}/ui/`, { waitUntil: 'load' });
      await bare.waitForSelector('#sign-in:not([hidden])', { timeout: TIMEOUT });
      await bare.type('#token', token);
      await bare.click('#sign-in-form button[type="submit"]');
      await bare.waitForSelector('#workspace:not([hidden])', { timeout: TIMEOUT });
      await bare.select('#project', 'payments');
      await bare.waitForFunction(() => /project “payments”/.test(document.getElementById('secrets-caption').textContent), { timeout: TIMEOUT });
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
}

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
  const page = await browser.newPage();
  page.setDefaultTimeout(TIMEOUT);
  await main(page, context, browser);
  console.log('webui browser: all steps passed');
} catch (e) {
  // Failure messages name fields and states, never values.
  const what = e instanceof Failure ? e.message : String(e && e.message ? e.message : e);
  console.error(`not ok - ${step}: ${what}`);
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
