// Unit tests of static/forms.js, the UI's pure helpers.
import test from 'node:test';
import assert from 'node:assert/strict';

import * as F from '../static/forms.js';
import { FieldErrors } from '../static/validate.js';

const invalidOf = (field) => (e) => e.code === 'invalid_argument' && e.message.startsWith(`invalid ${field}`);

test('permissions follow the granted actions', () => {
  const editor = F.permissions(['secrets.list', 'secrets.create', 'secrets.update', 'secrets.delete']);
  assert.deepEqual(editor, { list: true, create: true, update: true, delete: true, copyFrom: false, copyTo: true, overwrite: true });
  const reader = F.permissions(['secrets.list', 'secrets.read']);
  assert.deepEqual(reader, { list: true, create: false, update: false, delete: false, copyFrom: true, copyTo: false, overwrite: false });
  const migrator = F.permissions(['project.migrate']);
  assert.equal(migrator.copyFrom, true);
  assert.equal(migrator.copyTo, true);
  assert.equal(migrator.overwrite, true);
  assert.equal(F.permissions(['secrets.create']).overwrite, false);
  assert.equal(F.permissions(undefined).list, false);
});

test('copyTargets are the projects one may create in', () => {
  const projects = [
    { name: 'a', actions: ['secrets.list', 'secrets.read'] },
    { name: 'b', actions: ['secrets.create'] },
    { name: 'c', actions: ['project.migrate'] },
  ];
  assert.deepEqual(F.copyTargets(projects), ['b', 'c']);
});

test('pairsToData builds data and skips empty rows', () => {
  const data = F.pairsToData([
    { key: ' user ', value: 'app' },
    { key: '', value: '' },
    { key: 'password', value: ' keep spaces ' },
  ]);
  assert.deepEqual(data, { user: 'app', password: ' keep spaces ' });
  assert.deepEqual(F.pairsToData([{ key: 'k', value: '' }], { allowEmpty: true }), { k: '' });
});

/** fields is what a FieldErrors says, without the messages. */
const fields = (fn) => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof FieldErrors, `a FieldErrors, got ${e && e.name}`);
    assert.equal(e.code, 'invalid_argument');
    return e.errors.map(({ message, ...where }) => where);
  }
  assert.fail('no error');
};

test('pairsToData refuses bad rows, naming rows and keys, never values', () => {
  assert.deepEqual(fields(() => F.pairsToData([])), [{ field: 'data', row: 0, part: 'key' }]);
  assert.deepEqual(fields(() => F.pairsToData([{ key: 'k', value: '' }])), [{ field: 'data', row: 0, part: 'value' }], 'empty values need allowing');
  assert.throws(() => F.pairsToData([{ key: '', value: 'SECRET' }]), (e) => /Enter a key/.test(e.message) && !e.message.includes('SECRET'));
  assert.throws(() => F.pairsToData([{ key: 'a b', value: 'SECRET' }]), (e) => e.message === 'A key cannot contain spaces: use letters, digits, “_”, “.” or “-”.');
  assert.deepEqual(fields(() => F.pairsToData([{ key: 'k', value: '1' }, { key: 'x', value: '2' }, { key: 'k', value: '3' }])), [{ field: 'data', row: 2, part: 'key' }]);
  const many = Array.from({ length: 101 }, (_, i) => ({ key: `k${i}`, value: 'v' }));
  assert.throws(() => F.pairsToData(many), /at most 100 keys \(this form has 101\)/);
});

test('rowsToLabels and labelsToRows', () => {
  assert.deepEqual(F.rowsToLabels([{ key: 'env', value: ' prod ' }, { key: '', value: '' }]), { env: 'prod' });
  assert.deepEqual(F.rowsToLabels([]), {});
  assert.throws(() => F.rowsToLabels([{ key: 'Env', value: 'x' }]), (e) => e.message === 'Label names are lower case: “env”, not “Env”.');
  assert.deepEqual(fields(() => F.rowsToLabels([{ key: '', value: 'x' }])), [{ field: 'labels', row: 0, part: 'key' }]);
  assert.throws(() => F.rowsToLabels([{ key: 'a', value: 'x' }, { key: 'a', value: 'y' }]), /twice/);
  assert.deepEqual(fields(() => F.rowsToLabels([{ key: 'a', value: 'é'.repeat(64) }])), [{ field: 'labels', row: 0, part: 'value' }]);
  assert.deepEqual(F.rowsToLabels([{ key: 'a', value: 'é'.repeat(63) }]), { a: 'é'.repeat(63) }, 'characters, not bytes');
  assert.deepEqual(F.labelsToRows({ team: 'pay', env: 'dev' }), [{ key: 'env', value: 'dev' }, { key: 'team', value: 'pay' }]);
});

test('createRequest: the body of + Add Secret, every problem at once', () => {
  assert.deepEqual(
    F.createRequest({ name: ' db ', pairs: [{ key: 'user', value: 'u' }, { key: 'password', value: 'p' }], labels: [{ key: 'env', value: 'dev' }] }),
    { name: 'db', data: { user: 'u', password: 'p' }, labels: { env: 'dev' } },
  );
  assert.deepEqual(F.createRequest({ name: 'db', pairs: [{ key: 'k', value: 'v' }], labels: [{ key: '', value: '' }] }), { name: 'db', data: { k: 'v' } });
  assert.deepEqual(F.createRequest({ name: 'db', pairs: [{ key: 'k', value: '' }], labels: [], allowEmpty: true }), { name: 'db', data: { k: '' } });
  assert.deepEqual(
    fields(() => F.createRequest({ name: 'a.b', pairs: [{ key: 'host', value: 'v' }, { key: 'host', value: 'w' }], labels: [{ key: 'Env', value: 'x' }] })),
    [{ field: 'name' }, { field: 'data', row: 1, part: 'key' }, { field: 'labels', row: 0, part: 'key' }],
  );
});

test('replaceRequest always sends labels (so that clearing them works)', () => {
  assert.deepEqual(F.replaceRequest({ pairs: [{ key: 'k', value: 'v' }], labels: [] }), { data: { k: 'v' }, labels: {} });
});

test('setKeyRequest and removeKeyRequest', () => {
  assert.deepEqual(F.setKeyRequest({ key: ' token ', value: 'x' }), { set: { token: 'x' } });
  assert.deepEqual(F.setKeyRequest({ key: 'token', value: '', allowEmpty: true }), { set: { token: '' } });
  assert.deepEqual(fields(() => F.setKeyRequest({ key: '', value: '' })), [{ field: 'set', part: 'key' }, { field: 'set', part: 'value' }]);
  assert.throws(() => F.setKeyRequest({ key: 'k', value: '' }), (e) => e.message === 'Enter a value, or tick “Allow an empty value”.');
  assert.deepEqual(F.removeKeyRequest({ key: 'a', keys: ['a', 'b'] }), { unset: ['a'] });
  assert.throws(() => F.removeKeyRequest({ key: 'a', keys: ['a'] }), /delete the secret/);
  assert.deepEqual(fields(() => F.removeKeyRequest({ key: 'c', keys: ['a', 'b'] })), [{ field: 'unset' }]);
});

test('copyRequest', () => {
  assert.deepEqual(F.copyRequest({ fromProject: 'p', name: 'db', toProject: 'q', as: '', overwrite: false }), { toProject: 'q' });
  assert.deepEqual(F.copyRequest({ fromProject: 'p', name: 'db', toProject: 'q', as: 'db', overwrite: true }), { toProject: 'q', overwrite: true });
  assert.deepEqual(F.copyRequest({ fromProject: 'p', name: 'db', toProject: 'p', as: 'db2' }), { toProject: 'p', as: 'db2' });
  assert.throws(() => F.copyRequest({ fromProject: 'p', name: 'db', toProject: 'p', as: '' }), (e) => e.errors[0].field === 'as' && /needs a new name/.test(e.message));
  assert.throws(() => F.copyRequest({ fromProject: 'p', name: 'db', toProject: 'p', as: 'db' }), (e) => e.message === 'Within project “p” the copy needs a name other than “db”.');
  assert.throws(() => F.copyRequest({ fromProject: 'p', name: 'db', toProject: 'q', as: 'a b' }), (e) => e.message === 'The new name cannot contain spaces: use letters, digits, “_” or “-”.');
  assert.deepEqual(fields(() => F.copyRequest({ fromProject: 'p', name: 'db', toProject: '' })), [{ field: 'to_project' }]);
});

test('prefixFilter', () => {
  assert.equal(F.prefixFilter(' stripe- '), 'stripe-');
  assert.equal(F.prefixFilter(''), '');
  assert.throws(() => F.prefixFilter('a/b'), invalidOf('prefix'));
});

test('formatting', () => {
  assert.equal(F.formatLabels({ team: 'pay', env: 'dev' }), 'env=dev, team=pay');
  assert.equal(F.formatLabels({}), '');
  assert.equal(F.formatLabels(undefined), '');
  assert.equal(F.formatTime('2025-06-01T10:00:00.123456789Z'), '2025-06-01 10:00:00 UTC');
  assert.equal(F.formatTime(''), '');
  assert.equal(F.formatTime('garbage'), 'garbage');
  assert.equal(F.describeError({ message: 'm', code: 'not_found', requestId: 'r1' }), 'm (not_found) — request id r1');
  assert.equal(F.describeError(new Error('plain')), 'plain');
});

test('upsertSorted keeps the list sorted by name', () => {
  const list = [{ name: 'a', v: 1 }, { name: 'c', v: 1 }];
  assert.deepEqual(F.upsertSorted(list, { name: 'b', v: 1 }).map((m) => m.name), ['a', 'b', 'c']);
  assert.deepEqual(F.upsertSorted(list, { name: 'd', v: 1 }).map((m) => m.name), ['a', 'c', 'd']);
  assert.deepEqual(F.upsertSorted(list, { name: 'a', v: 2 }), [{ name: 'a', v: 2 }, { name: 'c', v: 1 }]);
  assert.equal(list.length, 2, 'the input is not changed');
});

test('lineBreaks tells LF, CR LF, none and mixed apart', () => {
  const cases = [
    ['', 'none'],
    ['one line', 'none'],
    ['a\nb\n', 'lf'],
    ['a\r\nb\r\n', 'crlf'],
    ['\r\n', 'crlf'],
    ['a\r\nb\n', 'mixed'],
    ['a\rb', 'mixed'],
    ['a\r\rb\r\n', 'mixed'],
    ['a\n\r', 'mixed'],
  ];
  for (const [text, want] of cases) assert.equal(F.lineBreaks(text), want, JSON.stringify(text));
});

test('withLineBreaks sets every line break and changes nothing else', () => {
  const cases = [
    ['a\nb\n', 'lf', 'a\nb\n'],
    ['a\nb\n', 'crlf', 'a\r\nb\r\n'],
    ['\n\nx\n', 'crlf', '\r\n\r\nx\r\n'],
    ['a\r\nb', 'lf', 'a\nb'],
    ['a\r\nb', 'crlf', 'a\r\nb'],
    ['a\rb', 'crlf', 'a\r\nb'],
    ['  spaced \t\u00e9\u{1f511}  ', 'crlf', '  spaced \t\u00e9\u{1f511}  '],
    ['', 'crlf', ''],
  ];
  for (const [text, eol, want] of cases) assert.equal(F.withLineBreaks(text, eol), want, `${JSON.stringify(text)} ${eol}`);
  assert.throws(() => F.withLineBreaks('a', 'cr'), invalidOf('line breaks'));
});

test('fileText keeps a file exactly, byte order mark included, and refuses what is not UTF-8', () => {
  const enc = (s) => new TextEncoder().encode(s);
  const text = '\ufeffkey\r\nb\nc\r\u00e9\u{1f511}\n';
  assert.equal(F.fileText(enc(text), 'k.pem'), text);
  assert.deepEqual(enc(F.fileText(enc(text).buffer, 'k.pem')), enc(text), 'an ArrayBuffer too, byte for byte');
  assert.equal(F.fileText(new Uint8Array(0), 'empty'), '');
  for (const bad of [[0xff], [0x41, 0xc3], [0xed, 0xa0, 0x80] /* a UTF-16 surrogate */, [0xc0, 0xaf] /* overlong */]) {
    assert.throws(() => F.fileText(new Uint8Array(bad), 'x.bin'), (e) => invalidOf('value')(e) && e.message.includes('"x.bin" is not UTF-8 text'));
  }
  assert.throws(() => F.fileText(new Uint8Array(F.maxFileBytes + 1), 'big'), (e) => invalidOf('value')(e) && /larger than 1048576 bytes/.test(e.message));
  F.checkFileSize(F.maxFileBytes, 'fits');
  assert.throws(() => F.checkFileSize(F.maxFileBytes + 1, 'big'), invalidOf('value'));
});
