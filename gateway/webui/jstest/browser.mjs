// browser.mjs drives the web UI in a real browser (Debian's chromium, through
// puppeteer-core, which downloads no browser) against a real gateway: a
// person signs in, pastes a PEM key and a CR LF value from the clipboard
// into value fields, types a multi-line value with CR LF line breaks, and
// loads a file with mixed line breaks, then saves the secret.
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

async function main(page, context) {
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
  await main(page, context);
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
