// dotenv.js: reading a pasted .env block (KEY=VALUE lines) into key/value
// pairs for the Add Secret form. No DOM.
//
// The syntax is the common one of dotenv files:
//   KEY=value            unquoted: trimmed; " #" starts a comment
//   export KEY=value     the shell's export prefix is dropped
//   KEY='value'          single quotes: kept exactly, no escapes
//   KEY="a\nb"           double quotes: \n \r \t \\ \" are escapes
//   KEY="line one        a quoted value may span lines (joined with LF)
//   line two"
//   # comment, blank lines
// Errors name the line and, when it is well formed, the key: never a value.

import { keyProblem } from './validate.js';

const ESCAPES = { n: '\n', r: '\r', t: '\t', '\\': '\\', '"': '"' };

/**
 * parseDotenv answers {pairs: [{key, value, line}], errors: [{line,
 * message}]}; lines count from 1. A key given twice is an error on its
 * second line (a form holds each key once).
 */
export function parseDotenv(text) {
  const lines = String(text ?? '').replace(/^\ufeff/, '').split(/\r\n|\r|\n/);
  const pairs = [];
  const errors = [];
  const firstLine = new Map();
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    const line = lines[i];
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    // The line as written (a quoted value keeps its trailing spaces).
    const body = line.replace(/^\s+/, '').replace(/^export\s+/, '');
    const eq = body.indexOf('=');
    if (eq < 0) {
      errors.push({ line: n, message: `Line ${n}: no “=”: write KEY=value.` });
      continue;
    }
    const key = body.slice(0, eq).trim();
    let rest = body.slice(eq + 1).replace(/^[ \t]+/, '');
    let value;
    const quote = rest[0];
    if (quote === '"' || quote === "'" || quote === '`') {
      // Read up to the closing quote, across lines if need be.
      let out = '';
      let j = 1;
      let closed = false;
      let last = i;
      for (;;) {
        for (; j < rest.length; j++) {
          const c = rest[j];
          if (c === quote) {
            closed = true;
            break;
          }
          if (quote === '"' && c === '\\' && j + 1 < rest.length) {
            const next = rest[j + 1];
            out += Object.hasOwn(ESCAPES, next) ? ESCAPES[next] : `\\${next}`;
            j++;
            continue;
          }
          out += c;
        }
        if (closed || last + 1 >= lines.length) break;
        last++;
        out += '\n';
        rest = lines[last];
        j = 0;
      }
      if (!closed) {
        errors.push({ line: n, message: `Line ${n}: the quote opened here is never closed.` });
        break; // everything after it was taken as its value
      }
      const after = rest.slice(j + 1);
      i = last;
      if (after.trim() !== '' && !/^\s+#/.test(after) && !after.startsWith('#')) {
        errors.push({ line: last + 1, message: `Line ${last + 1}: text after the closing quote (quote the whole value, or put a “#” comment after a space).` });
        continue;
      }
      value = out;
    } else {
      const comment = rest.search(/[ \t]#/);
      value = (comment < 0 ? rest : rest.slice(0, comment)).replace(/[ \t]+$/, '');
    }
    if (key === '') {
      errors.push({ line: n, message: `Line ${n}: no key before “=”.` });
      continue;
    }
    const problem = keyProblem(key);
    if (problem) {
      errors.push({ line: n, message: `Line ${n}: ${problem}` });
      continue;
    }
    if (firstLine.has(key)) {
      errors.push({ line: n, message: `Line ${n}: “${key}” was already set on line ${firstLine.get(key)}.` });
      continue;
    }
    firstLine.set(key, n);
    pairs.push({ key, value, line: n });
  }
  return { pairs, errors };
}

/**
 * looksLikeDotenv says whether text pasted into a key field is KEY=VALUE
 * lines (a key never holds "="), to fill the rows with rather than the field.
 */
export function looksLikeDotenv(text) {
  const first = String(text ?? '')
    .split(/\r\n|\r|\n/)
    .map((l) => l.trim())
    .find((l) => l !== '' && !l.startsWith('#'));
  return first !== undefined && /^(export\s+)?[^=\s]+\s*=/.test(first);
}
