import assert from 'node:assert/strict';
import { test } from 'node:test';
import { redactUrl, splitCredentials } from '../src/url-credentials.ts';

test('redactUrl hides the whole userinfo of every URL in a text, and nothing else', () => {
  const cases: Array<[string, string]> = [
    ['http://apk:s3cret@host/main/musl', 'http://***@host/main/musl'],
    ['https://reef_tok@host:8443/x?y=1', 'https://***@host:8443/x?y=1'],
    // WHATWG URL: the userinfo ends at the last @ of the authority.
    ['http://u:p@ss@host/', 'http://***@host/'],
    [
      'Request cannot be constructed from a URL that includes credentials: HTTP://a:b@h/k and http://c@d',
      'Request cannot be constructed from a URL that includes credentials: HTTP://***@h/k and http://***@d',
    ],
    // A URL that does not parse is redacted all the same.
    ['http://apk:tok@[::1/main', 'http://***@[::1/main'],
    // No userinfo: unchanged, even with an @ later in the path or a query.
    ['http://host/a@b?c=d@e', 'http://host/a@b?c=d@e'],
    [
      'https://github.com/org/repo/.github/workflows/ci.yml@refs/heads/main',
      'https://github.com/org/repo/.github/workflows/ci.yml@refs/heads/main',
    ],
    ['mailto:someone@example.com', 'mailto:someone@example.com'],
  ];
  for (const [text, redacted] of cases) assert.equal(redactUrl(text), redacted, text);
});

test('splitCredentials moves the userinfo into a Basic header, decoded as apk sends it', () => {
  const basic = (userinfo: string) => `Basic ${Buffer.from(userinfo).toString('base64')}`;
  const split = (url: string) => {
    const { url: bare, authorization } = splitCredentials(new URL(url));
    return [bare.href, authorization];
  };
  assert.deepEqual(split('http://apk:reef_abc@host:1/main/musl'), [
    'http://host:1/main/musl',
    basic('apk:reef_abc'),
  ]);
  assert.deepEqual(split('http://reef_abc@host/'), ['http://host/', basic('reef_abc:')]);
  assert.deepEqual(split('http://a%40b:p%3Aq@host/'), ['http://host/', basic('a@b:p:q')]);
  // A stray % is kept as the URL parser kept it.
  assert.deepEqual(split('http://u:50%zz@host/'), ['http://host/', basic('u:50%zz')]);
  assert.deepEqual(split('http://host/x'), ['http://host/x', undefined]);
});
