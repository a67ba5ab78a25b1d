// browserkit.mjs: helpers of the real-browser test (browser.mjs): steps
// that are counted and timed, a check after every step that no value ever
// typed is in the page's markup or in its storage, clipboard pastes,
// sign-in, errors next to fields, and layout measurements. Not a test file
// itself (node --test runs *.test.mjs).

export class Failure extends Error {}

export function check(cond, what) {
  if (!cond) throw new Failure(what);
}

export const TIMEOUT = 15000;

/**
 * createKit: run(name, fn) runs one step; after it, every page watched
 * (watch(page)) is searched for the values registered with secret(value):
 * document.documentElement.outerHTML (text and attributes, which is what
 * the markup holds; form fields keep values in memory only),
 * sessionStorage and localStorage.
 */
export function createKit() {
  const values = [];
  const pages = new Set();
  const steps = [];
  let current = '';
  const kit = {
    get step() {
      return current;
    },
    steps,
    /** secret registers a value (each of its lines) that must never be in a page or its storage. */
    secret(value) {
      for (const line of String(value).split(/\r\n|\r|\n/)) if (line.length >= 8) values.push(line);
      return value;
    },
    watch(page) {
      pages.add(page);
      page.once('close', () => pages.delete(page));
      return page;
    },
    async run(name, fn) {
      current = name;
      const t0 = performance.now();
      await fn();
      for (const page of pages) await kit.noValues(page, name);
      const ms = Math.round(performance.now() - t0);
      steps.push({ name, ms });
      console.log(`ok ${steps.length} - ${name} (${ms} ms)`);
    },
    async noValues(page, where) {
      const found = await page.evaluate((vals) => {
        const stored = [];
        for (const s of [window.sessionStorage, window.localStorage]) {
          for (let i = 0; i < s.length; i++) stored.push(s.key(i), s.getItem(s.key(i)));
        }
        const hay = [document.documentElement.outerHTML, ...stored].join('\n');
        return vals.map((v, i) => (hay.includes(v) ? i : -1)).filter((i) => i >= 0);
      }, values);
      // The index only: the failure message never holds a value.
      check(found.length === 0, `after “${where}”: value #${found[0]} is in the page's markup or storage`);
    },
  };
  return kit;
}

/** paste puts text on the clipboard and pastes it with the keyboard into the element. */
export async function paste(page, selector, text) {
  await page.evaluate((t) => navigator.clipboard.writeText(t), text);
  await page.focus(selector);
  await page.keyboard.down('Control');
  await page.keyboard.press('KeyV');
  await page.keyboard.up('Control');
}

/** signIn signs a fresh page in and opens project. */
export async function signIn(page, addr, token, project) {
  await page.goto(`${addr}/ui/`, { waitUntil: 'load' });
  await page.waitForSelector('#sign-in:not([hidden])', { timeout: TIMEOUT });
  await page.type('#token', token);
  await page.click('#sign-in-form button[type="submit"]');
  await page.waitForSelector('#workspace:not([hidden])', { timeout: TIMEOUT });
  if (project) await openProject(page, project);
}

export async function openProject(page, project) {
  if ((await page.$eval('#project', (s) => s.value)) !== project) await page.select('#project', project);
  await page.waitForFunction(
    (p) => new RegExp(`(project|in) “${p}”`).test(document.getElementById('secrets-caption').textContent + document.getElementById('empty-title').textContent),
    { timeout: TIMEOUT },
    project,
  );
}

/** clickRow opens a secret of the list. */
export async function openSecret(page, name) {
  await page.waitForFunction(
    (n) => [...document.querySelectorAll('#secrets-body button.link')].some((b) => b.textContent === n),
    { timeout: TIMEOUT },
    name,
  );
  await page.evaluate((n) => [...document.querySelectorAll('#secrets-body button.link')].find((b) => b.textContent === n).click(), name);
  await page.waitForFunction((n) => document.getElementById('details-title').textContent === n && !document.getElementById('details').hidden, { timeout: TIMEOUT }, name);
}

export const waitStatus = (page, re) =>
  page.waitForFunction((src) => new RegExp(src).test(document.getElementById('status').textContent), { timeout: TIMEOUT }, re.source).catch(async () => {
    throw new Failure(`status: ${JSON.stringify(await page.$eval('#status', (s) => s.textContent))}`);
  });

/** errorOf is the error said next to a field (found by its aria-describedby), or "". */
export const errorOf = (page, selector) =>
  page.$eval(selector, (el) => {
    const id = el.getAttribute('aria-describedby');
    const slot = id && document.getElementById(id);
    return { text: slot ? slot.textContent : '', invalid: el.getAttribute('aria-invalid') === 'true', visible: !!slot && slot.offsetParent !== null };
  });

/**
 * layout measures the page as a person sees it at the current width: the
 * page's horizontal overflow, list cells whose content is cut, names and
 * times that wrap to a second line (a name too long for its column ends
 * in "…" and must then carry its whole self in a title), and whether the
 * project select is wide enough for its longest option.
 */
export function layout(page) {
  return page.evaluate(() => {
    const out = { overflow: 0, clipped: [], wrapped: [], ellipsisWithoutTitle: [], select: null, dialog: 0 };
    const de = document.documentElement;
    // The page, and each pane (one that scrolls sideways hides a part of it).
    out.overflow = Math.max(de.scrollWidth - de.clientWidth, ...[...document.querySelectorAll('.sidebar, .list-pane, .details')].map((p) => p.scrollWidth - p.clientWidth));
    const lineHeight = (el) => parseFloat(getComputedStyle(el).lineHeight) || el.getBoundingClientRect().height;
    for (const cell of document.querySelectorAll('#secrets-body th, #secrets-body td')) {
      if (cell.offsetParent === null) continue;
      if (cell.scrollWidth > cell.clientWidth + 1) out.clipped.push(`${cell.className}: ${cell.textContent}`);
    }
    for (const el of document.querySelectorAll('#secrets-body button.link, #secrets-body time, #secrets-body .item, #details-title, .version-head time, #details-meta time')) {
      if (el.offsetParent === null) continue;
      const lines = Math.round(el.getBoundingClientRect().height / lineHeight(el));
      if (lines > 1 && el.id !== 'details-title') out.wrapped.push(`${el.className || el.localName}: ${el.textContent}`);
      if (el.scrollWidth > el.clientWidth + 1 && el.getAttribute('title') !== el.textContent.replace(/,$/, '') && el.localName !== 'time') {
        out.ellipsisWithoutTitle.push(el.textContent);
      }
    }
    const select = document.getElementById('project');
    const probe = document.createElement('span');
    const cs = getComputedStyle(select);
    probe.style.font = cs.font;
    probe.style.position = 'absolute';
    probe.style.visibility = 'hidden';
    probe.style.whiteSpace = 'pre';
    document.body.append(probe);
    let widest = 0;
    for (const o of select.options) {
      probe.textContent = o.textContent;
      widest = Math.max(widest, probe.getBoundingClientRect().width);
    }
    probe.remove();
    const padding = parseFloat(cs.paddingLeft) + parseFloat(cs.paddingRight);
    // The room for text: the select's inner width, less its padding and the arrow (about 1.5em).
    out.select = { room: select.clientWidth - padding - 1.5 * parseFloat(cs.fontSize), widest };
    const open = document.querySelector('dialog[open]');
    if (open) out.dialog = open.scrollWidth - open.clientWidth;
    return out;
  });
}
