// Unit tests of static/dotenv.js: a pasted .env block read into pairs,
// with errors per line that never quote a value.
import test from 'node:test';
import assert from 'node:assert/strict';

import { looksLikeDotenv, parseDotenv } from '../static/dotenv.js';

const pairsOf = (text) => {
  const { pairs, errors } = parseDotenv(text);
  assert.deepEqual(errors, [], JSON.stringify(text));
  return Object.fromEntries(pairs.map((p) => [p.key, p.value]));
};

test('KEY=VALUE lines: export, quotes, escapes, comments, blank lines', () => {
  const cases = [
    ['A=1', { A: '1' }],
    ['A=1\nB=two words', { A: '1', B: 'two words' }],
    ['  A = spaced  ', { A: 'spaced' }],
    ['export A=1\nexport\tB=2', { A: '1', B: '2' }],
    ['# comment\n\nA=1\n   # indented comment\n', { A: '1' }],
    ['A=value # a comment', { A: 'value' }],
    ['A=pa#ss', { A: 'pa#ss' }, 'a # inside a word is part of the value'],
    ["A='single # not a comment'", { A: 'single # not a comment' }],
    ["A='no \\n escapes'", { A: 'no \\n escapes' }],
    ['A="tab\\there\\nnext \\"q\\" back\\\\slash \\$"', { A: 'tab\there\nnext "q" back\\slash \\$' }],
    ['A="  kept  "', { A: '  kept  ' }],
    ['A="quoted" # comment', { A: 'quoted' }],
    ['A=', { A: '' }],
    ['A=""', { A: '' }],
    ['A=x=y=z', { A: 'x=y=z' }],
    ['A.b-c_d=1', { 'A.b-c_d': '1' }],
    ['A="line one\nline two\n"\nB=after', { A: 'line one\nline two\n', B: 'after' }, 'a quoted value over several lines'],
    ["KEY='-----BEGIN KEY-----\r\nabc\r\n-----END KEY-----'", { KEY: '-----BEGIN KEY-----\nabc\n-----END KEY-----' }, 'CR LF lines join with LF'],
    ['\ufeffA=1\r\nB=2\r\n', { A: '1', B: '2' }, 'a byte order mark and CR LF'],
    ['A=`back tick`', { A: 'back tick' }],
  ];
  for (const [text, want, why] of cases) assert.deepEqual(pairsOf(text), want, why || JSON.stringify(text));
  assert.deepEqual(parseDotenv('# x\nA=1\n\nB=2').pairs.map((p) => p.line), [2, 4], 'line numbers count every line');
});

test('errors name the line and what is wrong, never a value', () => {
  const secret = 'CANARY-dotenv-9f2';
  const cases = [
    [`just ${secret}`, [`Line 1: no “=”: write KEY=value.`]],
    [`A=1\n=${secret}`, [`Line 2: no key before “=”.`]],
    [`my key=${secret}`, ['Line 1: A key cannot contain spaces: use letters, digits, “_”, “.” or “-”.']],
    [`A=1\nB=2\nA=${secret}`, ['Line 3: “A” was already set on line 1.']],
    [`A="${secret}\nB=2`, ['Line 1: the quote opened here is never closed.']],
    [`A='${secret}' trailing`, ['Line 1: text after the closing quote (quote the whole value, or put a “#” comment after a space).']],
    [`A=1\nbad\nC="x\ny" z\nD=${secret}`, ['Line 2: no “=”: write KEY=value.', 'Line 4: text after the closing quote (quote the whole value, or put a “#” comment after a space).']],
  ];
  for (const [text, want] of cases) {
    const { errors } = parseDotenv(text);
    assert.deepEqual(errors.map((e) => e.message), want, JSON.stringify(text));
    assert.ok(!JSON.stringify(errors).includes(secret), 'no value in an error');
  }
  const { pairs } = parseDotenv(`A=1\nbad line\nB=${secret}`);
  assert.deepEqual(pairs.map((p) => p.key), ['A', 'B'], 'good lines are still read (the form fills nothing while any line is wrong)');
});

test('looksLikeDotenv: text pasted into a key field that is KEY=VALUE lines', () => {
  for (const t of ['A=1', 'export A=1', '# env\nA=1\nB=2', '  DB_URL = postgres://x ']) assert.ok(looksLikeDotenv(t), t);
  for (const t of ['api_key', '', '# only a comment', '=value', 'two words=1']) assert.ok(!looksLikeDotenv(t), t);
});
