// Unit tests of static/validate.js: the checks made before sending, in
// plain words, and the gateway's invalid_argument answers mapped to fields.
import test from 'node:test';
import assert from 'node:assert/strict';

import { APIError } from '../static/api.js';
import * as V from '../static/validate.js';

test('names: plain words about what is wrong, "" when right', () => {
  const cases = [
    ['db', ''],
    ['Stripe_key-2', ''],
    ['', 'Enter a name.'],
    ['   ', 'Enter a name.'],
    ['a/b', 'A name cannot contain “/”: use letters, digits, “_” or “-”.'],
    ['my secret', 'A name cannot contain spaces: use letters, digits, “_” or “-”.'],
    ['db.prod', 'A name cannot contain “.”: use letters, digits, “_” or “-”.'],
    ['-db', 'A name must start with a letter or a digit.'],
    ['_db', 'A name must start with a letter or a digit.'],
    ['a'.repeat(128), ''],
    ['a'.repeat(129), 'A name has at most 128 characters (this one has 129).'],
  ];
  for (const [name, want] of cases) assert.equal(V.nameProblem(name), want, JSON.stringify(name));
  assert.equal(V.nameProblem('a b', 'The new name'), 'The new name cannot contain spaces: use letters, digits, “_” or “-”.');
});

test('keys and label names', () => {
  const keys = [
    ['api_key', ''],
    ['tls.crt', ''],
    ['-x', ''],
    ['', 'Enter a key.'],
    ['a b', 'A key cannot contain spaces: use letters, digits, “_”, “.” or “-”.'],
    ['a=b', 'A key cannot contain “=”: use letters, digits, “_”, “.” or “-”.'],
    ['a\tb', 'A key cannot contain tabs: use letters, digits, “_”, “.” or “-”.'],
    ['k'.repeat(129), 'A key has at most 128 characters (this one has 129).'],
  ];
  for (const [k, want] of keys) assert.equal(V.keyProblem(k), want, JSON.stringify(k));
  const labels = [
    ['env', ''],
    ['team_name-2', ''],
    ['Env', 'Label names are lower case: “env”, not “Env”.'],
    ['ENV', 'Label names are lower case: “env”, not “ENV”.'],
    ['2env', 'A label name must start with a letter (a-z).'],
    ['e.nv', 'A label name cannot contain “.”: use lower-case letters, digits, “_” or “-”.'],
    ['My Env', 'A label name cannot contain capital letters: use lower-case letters, digits, “_” or “-”.'],
    ['e'.repeat(64), 'A label name has at most 63 characters (this one has 64).'],
    ['', 'Enter a label name.'],
  ];
  for (const [k, want] of labels) assert.equal(V.labelKeyProblem(k), want, JSON.stringify(k));
  assert.equal(V.labelValueProblem('x'.repeat(63)), '');
  assert.equal(V.labelValueProblem('x'.repeat(64)), 'A label value has at most 63 characters (this one has 64).');
  assert.equal(V.prefixProblem(''), '');
  assert.equal(V.prefixProblem('stripe-'), '');
  assert.equal(V.prefixProblem('a b'), 'Names never contain spaces: filter with letters, digits, “_” or “-”.');
});

test('pairErrors: each problem on its row and part, all at once; never a value', () => {
  const rows = [
    { key: 'host', value: 'SECRET-1' },
    { key: '', value: '' }, // skipped
    { key: 'host', value: 'SECRET-2' },
    { key: 'a b', value: '' },
    { key: '', value: 'SECRET-3' },
  ];
  const errors = V.pairErrors(rows);
  assert.deepEqual(errors, [
    { field: 'data', row: 2, part: 'key', message: '“host” is given twice: each key once.' },
    { field: 'data', row: 3, part: 'key', message: 'A key cannot contain spaces: use letters, digits, “_”, “.” or “-”.' },
    { field: 'data', row: 3, part: 'value', message: 'Enter a value, remove this row, or tick “Allow empty values”.' },
    { field: 'data', row: 4, part: 'key', message: 'Enter a key for this value.' },
  ]);
  assert.ok(!JSON.stringify(errors).includes('SECRET'));
  assert.deepEqual(V.pairErrors([{ key: 'k', value: '' }], { allowEmpty: true }), []);
  assert.deepEqual(V.pairErrors([{ key: 'k', value: 'a\ud800b' }]), [{ field: 'data', row: 0, part: 'value', message: 'This value holds a broken character (half of a UTF-16 pair): enter it again.' }]);
  assert.deepEqual(V.pairErrors([{ key: 'k', value: '\udc00' }]).length, 1);
  assert.deepEqual(V.pairErrors([{ key: 'k', value: '\u{1f511} \ud83d\udd11' }]), [], 'a whole pair is fine');
  assert.deepEqual(V.pairErrors([{ key: '', value: '' }]), [{ field: 'data', row: 0, part: 'key', message: 'Enter at least one key and its value.' }]);
});

test('labelErrors, setKeyErrors, copyErrors', () => {
  assert.deepEqual(V.labelErrors([{ key: 'env', value: 'a' }, { key: 'env', value: 'b' }, { key: '', value: 'c' }]), [
    { field: 'labels', row: 1, part: 'key', message: 'The label “env” is given twice: each label once.' },
    { field: 'labels', row: 2, part: 'key', message: 'Enter a label name for this value.' },
  ]);
  assert.deepEqual(V.setKeyErrors({ key: 'k', value: '' }), [{ field: 'set', part: 'value', message: 'Enter a value, or tick “Allow an empty value”.' }]);
  assert.deepEqual(V.setKeyErrors({ key: 'k', value: '', allowEmpty: true }), []);
  assert.deepEqual(V.copyErrors({ fromProject: 'p', name: 'db', toProject: 'p', as: ' db ' }), [
    { field: 'as', message: 'Within project “p” the copy needs a name other than “db”.' },
  ]);
  assert.deepEqual(V.copyErrors({ fromProject: 'p', name: 'db', toProject: 'q', as: '' }), []);
});

test('fromAPI maps the gateway’s invalid_argument answers to fields, in plain words', () => {
  const cases = [
    ['invalid data: key "host" is given twice', { field: 'data', key: 'host', part: 'key', message: '“host” is given twice: each key once.' }],
    [
      'invalid labels: key "Env" must match ^[a-z][a-z0-9_-]{0,62}$',
      { field: 'labels', key: 'Env', part: 'key', message: 'Label names are lower case: “env”, not “Env”.' },
    ],
    ['invalid as: must differ from the source name when copying within one project', { field: 'as', message: 'Within the same project the copy needs a different name.' }],
    [
      'invalid data: key "a b" must be 1-128 characters of A-Z, a-z, 0-9, \'_\', \'.\' and \'-\'',
      { field: 'data', key: 'a b', part: 'key', message: 'A key cannot contain spaces: use letters, digits, “_”, “.” or “-”.' },
    ],
    ['invalid labels.env: value is longer than 63 characters', { field: 'labels', key: 'env', part: 'value', message: 'At most 63 characters.' }],
    ['invalid set.k: value must be valid UTF-8', { field: 'set', key: 'k', part: 'value', message: 'This is not valid text (UTF-8).' }],
    [
      "invalid name: must be 1-128 characters of A-Z, a-z, 0-9, '_' and '-', starting with a letter or digit",
      { field: 'name', message: 'A name: 1-128 characters, use letters, digits, “_” or “-”, starting with a letter or digit.' },
    ],
    ['invalid data.k: holds a lone UTF-16 surrogate escape (not valid Unicode)', { field: 'data', key: 'k', part: 'value', message: 'This value holds a broken character (half of a UTF-16 pair): enter it again.' }],
    ['invalid unset: would remove every key', { field: 'unset', message: 'A secret keeps at least one key: to remove the last one, delete the secret.' }],
    ['invalid version: must be the number of a stored version (1 or more)', { field: 'version', message: 'Must be the number of a stored version (1 or more).' }],
  ];
  for (const [message, want] of cases) {
    const fe = V.fromAPI(new APIError({ status: 400, code: 'invalid_argument', message, requestId: 'rid-1' }));
    assert.ok(fe instanceof V.FieldErrors, message);
    assert.deepEqual(fe.errors, [want], message);
    assert.equal(fe.requestId, 'rid-1');
    assert.equal(fe.status, 400);
  }
  assert.equal(V.fromAPI(new APIError({ status: 404, code: 'not_found', message: 'invalid x: y' })), null, 'other codes are not about a field');
  assert.equal(V.fromAPI(new APIError({ status: 400, code: 'invalid_argument', message: 'something else' })), null);
  assert.equal(V.fromAPI(null), null);
  const own = new V.FieldErrors([{ field: 'name', message: 'Enter a name.' }]);
  assert.equal(V.fromAPI(own), own, 'the browser’s own checks pass through');
});
