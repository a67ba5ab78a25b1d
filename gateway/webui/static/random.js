// random.js: random values for the Generate button, from the browser's
// CSPRNG (crypto.getRandomValues). No DOM.
//
// Each character is drawn uniformly from the alphabet by rejection
// sampling: a random byte b is used only when b < 256 - 256 % n (n the
// alphabet's size), then b % n picks the character. Plain b % n would make
// the first 256 % n characters more likely than the others.

import { invalid } from './api.js';

const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const DIGITS = '0123456789';

/**
 * alphabets the generator offers. The symbols leave out quotes, the
 * backslash, the backtick, "$" and spaces, so that a value can be pasted
 * into a shell, a .env file or YAML without quoting.
 */
export const alphabets = Object.freeze({
  alnum: { label: 'Letters and digits', short: 'letters and digits', chars: UPPER + LOWER + DIGITS },
  symbols: { label: 'Letters, digits and symbols', short: 'letters, digits and symbols', chars: `${UPPER}${LOWER}${DIGITS}!#%&()*+,-./:;<=>?@[]^_{|}~` },
  hex: { label: 'Hexadecimal (0-9, a-f)', short: 'hexadecimal', chars: `${DIGITS}abcdef` },
  base64url: { label: 'URL-safe (A-Z, a-z, 0-9, “-”, “_”)', short: 'URL-safe characters', chars: `${UPPER}${LOWER}${DIGITS}-_` },
  digits: { label: 'Digits only', short: 'digits', chars: DIGITS },
});

export const minLength = 4;
export const maxLength = 1024;
export const defaultLength = 32;

/** cryptoBytes fills a Uint8Array from the platform's CSPRNG (never Math.random). */
function cryptoBytes(buf) {
  const c = globalThis.crypto;
  if (!c || typeof c.getRandomValues !== 'function') throw new Error('this browser has no crypto.getRandomValues');
  return c.getRandomValues(buf);
}

/**
 * randomString draws length characters of chars (2 to 256 distinct ones),
 * each uniformly. fill(Uint8Array) supplies random bytes (tests pass their
 * own; the default is crypto.getRandomValues).
 */
export function randomString(length, chars, fill = cryptoBytes) {
  if (!Number.isSafeInteger(length) || length < 1 || length > maxLength) throw invalid('length', `must be a whole number from 1 to ${maxLength}`);
  const set = [...new Set([...String(chars ?? '')])];
  if (set.length < 2 || set.length > 256 || set.length !== [...String(chars)].length) throw invalid('alphabet', 'must be 2 to 256 distinct characters');
  const n = set.length;
  const limit = 256 - (256 % n); // bytes from limit up would favour the first characters
  const out = [];
  // Draw a little more than needed: about (256 - limit) / 256 of the bytes are rejected.
  const buf = new Uint8Array(Math.min(65536, Math.ceil(length * 1.25) + 8));
  while (out.length < length) {
    fill(buf);
    for (const b of buf) {
      if (b >= limit) continue;
      out.push(set[b % n]);
      if (out.length === length) break;
    }
  }
  return out.join('');
}

/** entropyBits: how many bits of randomness such a value holds. */
export function entropyBits(length, chars) {
  return Math.floor(length * Math.log2(new Set([...String(chars)]).size));
}

/** generate draws a value of one of the alphabets above. */
export function generate(length, alphabet, fill) {
  const a = alphabets[alphabet];
  if (!a) throw invalid('alphabet', `must be one of ${Object.keys(alphabets).join(', ')}`);
  return randomString(length, a.chars, fill);
}
