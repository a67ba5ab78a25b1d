// Unit tests of static/random.js: random values drawn uniformly (rejection
// sampling) from the chosen alphabet, with crypto.getRandomValues.
import test from 'node:test';
import assert from 'node:assert/strict';

import { alphabets, entropyBits, generate, maxLength, randomString } from '../static/random.js';

/** counting is a byte source that gives 0, 1, ..., 255, 0, 1, ... */
function counting() {
  let next = 0;
  const fill = (buf) => {
    for (let i = 0; i < buf.length; i++) buf[i] = next++ % 256;
    return buf;
  };
  return fill;
}

const counts = (s) => {
  const m = new Map();
  for (const c of s) m.set(c, (m.get(c) || 0) + 1);
  return m;
};

test('every byte value, twice, gives every character equally often: the bytes that would favour some are rejected', () => {
  for (const [name, a] of Object.entries(alphabets)) {
    const n = a.chars.length;
    const accepted = 256 - (256 % n); // of each 256 bytes, 0 .. accepted-1 are used, the rest rejected
    // Two rounds of every byte: plain b % n would count the rejected ones too.
    const s = randomString(2 * accepted, a.chars, counting());
    const c = counts(s);
    assert.equal(c.size, n, `${name}: every character appears`);
    for (const [ch, k] of c) assert.equal(k, (2 * accepted) / n, `${name}: “${ch}” appears ${k} times, want ${(2 * accepted) / n}`);
  }
});

test('rejected bytes are skipped, not folded onto the first characters', () => {
  const chars = alphabets.alnum.chars; // 62: bytes 248-255 are rejected
  const fill = (buf) => {
    buf.fill(255);
    buf[buf.length - 1] = 61;
    return buf;
  };
  assert.equal(randomString(3, chars, fill), chars[61].repeat(3), 'only the byte below the limit was used');
  assert.equal(randomString(1, '01', (b) => b.fill(7)), '1', 'two characters: no byte is rejected, 7 % 2 = 1');
});

test('values from crypto.getRandomValues: the chosen length and alphabet, uniform by a chi-square test', () => {
  for (const [name, a] of Object.entries(alphabets)) {
    for (const len of [4, 32, 100]) {
      const v = generate(len, name);
      assert.equal(v.length, len);
      assert.ok([...v].every((ch) => a.chars.includes(ch)), `${name}: only its characters`);
    }
  }
  // 62 characters, 200,000 draws: the chi-square statistic (61 degrees of
  // freedom, mean 61) exceeds 130 with probability below one in a million.
  const chars = alphabets.alnum.chars;
  const draws = 200000;
  const c = counts(randomString(1000, chars) + Array.from({ length: draws / 1000 - 1 }, () => randomString(1000, chars)).join(''));
  const expected = draws / chars.length;
  let chi = 0;
  for (const ch of chars) chi += ((c.get(ch) || 0) - expected) ** 2 / expected;
  assert.ok(chi < 130, `chi-square ${chi.toFixed(1)}`);
  assert.notEqual(generate(32, 'alnum'), generate(32, 'alnum'));
});

test('entropy, symbols safe to paste, and refusals', () => {
  assert.equal(entropyBits(32, alphabets.alnum.chars), 190);
  assert.equal(entropyBits(64, alphabets.hex.chars), 256);
  assert.equal(entropyBits(22, alphabets.base64url.chars), 132);
  for (const bad of ['"', "'", '\\', '`', '$', ' ']) assert.ok(!alphabets.symbols.chars.includes(bad), `no ${bad} in the symbols`);
  for (const a of Object.values(alphabets)) assert.equal(new Set(a.chars).size, a.chars.length, `${a.label}: distinct characters`);
  assert.throws(() => randomString(0, 'ab'), /length/);
  assert.throws(() => randomString(maxLength + 1, 'ab'), /length/);
  assert.throws(() => randomString(1.5, 'ab'), /length/);
  assert.throws(() => randomString(4, 'a'), /alphabet/);
  assert.throws(() => randomString(4, 'aab'), /alphabet/);
  assert.throws(() => generate(4, 'nope'), /alphabet/);
});
