import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type Dependency,
  formatDependency,
  parseDependency,
  parseDependencyList,
} from '../../src/apk/dependency.ts';
import { isAppError } from '../../src/errors.ts';

const invalid = (err: unknown) => isAppError(err, 'APK_INVALID_DEPENDENCY');

describe('parseDependency', () => {
  // Tokens seen in real Alpine indexes.
  const real: [string, Dependency][] = [
    ['pc:libffi>=3.0.0', { name: 'pc:libffi', conflict: false, op: '>=', version: '3.0.0' }],
    ['openssl>3', { name: 'openssl', conflict: false, op: '>', version: '3' }],
    ['lua5.1-bit32<26', { name: 'lua5.1-bit32', conflict: false, op: '<', version: '26' }],
    ['tdb~1.4.6', { name: 'tdb', conflict: false, op: '~', version: '1.4.6' }],
    ['!openssh-client-default', { name: 'openssh-client-default', conflict: true }],
    ['so:libpam.so.0=0.85.1', { name: 'so:libpam.so.0', conflict: false, op: '=', version: '0.85.1' }],
    ['cmd:clusterdb', { name: 'cmd:clusterdb', conflict: false }],
    ['/bin/sh', { name: '/bin/sh', conflict: false }],
    ['py3.10:setuptools', { name: 'py3.10:setuptools', conflict: false }],
    ['so:libc.musl-x86_64.so.1', { name: 'so:libc.musl-x86_64.so.1', conflict: false }],
    ['perl-timedate=2.33-r1', { name: 'perl-timedate', conflict: false, op: '=', version: '2.33-r1' }],
    ['!foo<~1.2_rc1', { name: 'foo', conflict: true, op: '<~', version: '1.2_rc1' }],
    ['bar>~2', { name: 'bar', conflict: false, op: '>~', version: '2' }],
    ['baz<=1.0~abc123-r2', { name: 'baz', conflict: false, op: '<=', version: '1.0~abc123-r2' }],
    ['x[a,b]+_', { name: 'x[a,b]+_', conflict: false }],
  ];

  for (const [token, expected] of real) {
    test(`parses ${token}`, () => {
      assert.deepEqual(parseDependency(token), expected);
      assert.equal(formatDependency(parseDependency(token)), token);
    });
  }

  test('rejects malformed tokens', () => {
    for (const token of [
      '', // empty
      '!', // conflict without a name
      '>=1.0', // no name
      '!<1', // no name
      'foo bar', // space inside one token
      'foo\tbar', // tab is not a separator
      'foo$', // bad name character
      'fo"o',
      '!!foo',
      'foo>=', // op without version
      'foo=1.0bc', // invalid version
      'foo=v1', // invalid version
      'foo>=1.0<2', // second op runs into the version
      'foo==1.0', // not an apk operator spelling
      'foo=>1.0',
      'foo<>1.0',
      'foo~=1.0',
      'foo><Q1abcdefghijklmnopqrstuvwxyz12=', // checksum match: world/lock only
    ]) {
      assert.throws(() => parseDependency(token), invalid, JSON.stringify(token));
    }
  });

  test('@tag is rejected unless allowed (index fields take no tag, apk3 src/package.c)', () => {
    assert.throws(() => parseDependency('foo@edge'), invalid);
    assert.throws(() => parseDependency('foo@edge>1'), invalid);
    const dep = parseDependency('foo@edge>=1.2', { allowTag: true });
    assert.deepEqual(dep, { name: 'foo', conflict: false, tag: 'edge', op: '>=', version: '1.2' });
    assert.equal(formatDependency(dep), 'foo@edge>=1.2');
    assert.throws(() => parseDependency('foo@', { allowTag: true }), invalid);
    assert.throws(() => parseDependency('@edge', { allowTag: true }), invalid);
    assert.throws(() => parseDependency('foo@a@b', { allowTag: true }), invalid);
  });

  test('the error names the token', () => {
    assert.throws(
      () => parseDependency('foo=1.0bc'),
      (err) => invalid(err) && err instanceof Error && err.message.includes('foo=1.0bc'),
    );
  });
});

describe('parseDependencyList', () => {
  test('splits on runs of spaces and newlines', () => {
    const deps = parseDependencyList(
      '  so:libc.musl-x86_64.so.1 pc:libffi>=3.0.0\n!openssh-client-default  /bin/sh\n',
    );
    assert.deepEqual(
      deps.map((d) => formatDependency(d)),
      ['so:libc.musl-x86_64.so.1', 'pc:libffi>=3.0.0', '!openssh-client-default', '/bin/sh'],
    );
  });

  test('empty and blank strings are empty lists', () => {
    assert.deepEqual(parseDependencyList(''), []);
    assert.deepEqual(parseDependencyList(' \n '), []);
  });

  test('one bad token fails the list', () => {
    assert.throws(() => parseDependencyList('musl openssl>3 foo=bad'), invalid);
  });
});
