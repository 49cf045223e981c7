import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ERROR_CODES } from '../../src/errors.ts';
import { generateRsaKey } from '../helpers/apk-builder.ts';
import { removeDir, startServer, TEST_TOKEN, type TestServer } from '../helpers/server.ts';
import { snapshotState } from './snapshot.ts';
import { makeApk, pkginfoLines, type Signer, tar } from './tar.ts';

/**
 * HTTP abuse against a real server: traversal in every path parameter of
 * every route, oversized headers and bodies, slow and vanishing uploads, and
 * a flood of failed logins.
 */

const CANARY = `reef-canary-${randomBytes(8).toString('hex')}`;
const MAX_UPLOAD = 4 * 2 ** 20;

let root: string;
let server: TestServer;
let signer: Signer;

before(async () => {
  // A secret beside the data folder: no request may ever return it.
  root = mkdtempSync(join(tmpdir(), 'reef-abuse-'));
  writeFileSync(join(root, 'secret.txt'), CANARY);
  mkdirSync(join(root, 'data'));
  server = await startServer(
    { REEF_LOG_LEVEL: 'warn', REEF_MAX_UPLOAD_BYTES: String(MAX_UPLOAD) },
    join(root, 'data'),
  );
  signer = { keyName: 'abuse.rsa.pub', privateKey: generateRsaKey().privateKey };
  const res = await fetch(`${server.url}/api/v1/repos/main/musl/packages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/octet-stream' },
    body: new Uint8Array(
      makeApk({ signer, pkginfo: (h) => `${pkginfoLines(h, 'baseline').join('\n')}\n` }).bytes,
    ),
  });
  assert.equal(res.status, 201);
});

after(async () => {
  await server.close();
  removeDir(root);
});

interface RawResponse {
  status: number;
  body: string;
}

/** A request whose path goes to the server byte for byte (fetch would normalise `..` and `%2e`). */
function raw(
  method: string,
  path: string,
  opts: { headers?: Record<string, string>; body?: Buffer | string } = {},
): Promise<RawResponse> {
  const { port } = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method, path, headers: opts.headers, timeout: 30_000 },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, body: Buffer.concat(parts).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} hung`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

const TRAVERSALS = [
  '..',
  '.',
  '%2e%2e',
  '%2E%2E',
  '.%2e',
  '%2e.',
  '..%2f..%2f..%2fsecret.txt',
  '%2e%2e%2f%2e%2e%2f%2e%2e%2fsecret.txt',
  '..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd',
  '%252e%252e%252f%252e%252e%252fsecret.txt',
  '..%255c..%255csecret.txt',
  '..%5c..%5c..%5csecret.txt',
  '%2fetc%2fpasswd',
  '%2f%2f',
  '..%00',
  '%00',
  'main%00.apk',
  '%c0%ae%c0%ae%c0%af',
  '....%2f%2f....%2f%2fsecret.txt',
  '..;',
  '%ff',
  '%',
  '%zz',
  'main%2f..%2f..%2fsecret.txt',
  `${'a'.repeat(600)}`,
];

const VALID: Record<string, string> = {
  repo: 'main',
  libc: 'musl',
  arch: 'x86_64',
  name: 'baseline',
  version: '1.0-r0',
  file: 'baseline-1.0-r0',
  keyName: 'no-such-key.rsa.pub',
  id: '999999',
};

describe('path traversal and encoded slashes', () => {
  test('in every path parameter of every route: a 4xx with a reef code, nothing read or changed', async (t) => {
    const doc = (await (await fetch(`${server.url}/api/v1/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const state = JSON.stringify(await snapshotState(server));
    const failures: string[] = [];
    let requests = 0;
    let routes = 0;
    for (const [path, operations] of Object.entries(doc.paths)) {
      const params = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
      if (params.length === 0) continue;
      for (const method of Object.keys(operations)) {
        routes++;
        for (const param of params) {
          assert.ok(param in VALID, `no valid value for {${param}} in ${path}`);
          for (const payload of TRAVERSALS) {
            const url = path.replace(/\{(\w+)\}/g, (_, p: string) => (p === param ? payload : VALID[p]!));
            const r = await raw(method.toUpperCase(), url, {
              headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' },
              body: method === 'get' || method === 'delete' || method === 'head' ? undefined : '{}',
            });
            requests++;
            let code: string | undefined;
            try {
              code = (JSON.parse(r.body) as { code?: string }).code;
            } catch {
              // The web interface's error pages name the code as the API does.
              if (r.body.startsWith('<!doctype html>')) code = /<code>([A-Z0-9_]+)<\/code>/.exec(r.body)?.[1];
            }
            // HEAD answers carry no body, so no code.
            const codeOk = method === 'head' ? r.body === '' : code !== undefined && code in ERROR_CODES;
            if (r.status < 400 || r.status >= 500 || !codeOk) {
              failures.push(`${method.toUpperCase()} ${url}: ${r.status} ${r.body.slice(0, 120)}`);
            }
            if (r.body.includes(CANARY) || r.body.includes('root:x:0:0')) {
              failures.push(`${method.toUpperCase()} ${url}: leaked a file`);
            }
          }
        }
      }
    }
    t.diagnostic(`${requests} requests over ${routes} parameterised operations`);
    assert.deepEqual(failures, []);
    assert.ok(routes >= 15, `${routes} operations`);
    assert.equal(JSON.stringify(await snapshotState(server)), state);
  });

  test('whole-path traversal is not found, never a file', async () => {
    for (const path of [
      '/main/musl/x86_64/../../../../secret.txt',
      '/keys/../../../secret.txt',
      '/%2e%2e/%2e%2e/%2e%2e/secret.txt',
      '/main/musl/%2e%2e%2f%2e%2e%2f%2e%2e%2fsecret.txt',
      '//etc/passwd',
      '/main/musl/x86_64/..%2f..%2f..%2f..%2fetc%2fpasswd',
      '/api/v1/../../../../etc/passwd',
    ]) {
      const r = await raw('GET', path);
      assert.ok(r.status >= 400 && r.status < 500, `${path}: ${r.status}`);
      assert.ok(!r.body.includes(CANARY) && !r.body.includes('root:x:0:0'), path);
    }
  });
});

describe('oversized requests', () => {
  test('a header of 100 KiB, 5,000 headers and a 100 KiB URL are refused; the server keeps serving', async () => {
    const big = await rawSocket(
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(100 * 1024)}\r\n\r\n`,
    );
    assert.match(big, /^HTTP\/1\.1 431 /);
    // The same error body as every other status: a stable code and a message.
    const body = JSON.parse(big.slice(big.indexOf('\r\n\r\n') + 4)) as { code: string; message: string };
    assert.equal(body.code, 'REQUEST_HEADERS_TOO_LARGE');
    assert.equal(typeof body.message, 'string');
    const many = Array.from({ length: 5000 }, (_, i) => `X-H${i}: v\r\n`).join('');
    assert.match(await rawSocket(`GET /healthz HTTP/1.1\r\nHost: x\r\n${many}\r\n`), /^HTTP\/1\.1 431 /);
    assert.match(
      await rawSocket(`GET /${'a'.repeat(100 * 1024)} HTTP/1.1\r\nHost: x\r\n\r\n`),
      /^HTTP\/1\.1 431 /,
    );
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
  });

  test('a 2 MiB JSON body is 413', async () => {
    const r = await raw('POST', '/api/v1/tokens', {
      headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'x'.repeat(2 * 2 ** 20), scopes: ['*:read'] }),
    });
    assert.equal(r.status, 413);
    assert.ok(JSON.parse(r.body).code in ERROR_CODES);
  });

  test('uploads over the limit: declared, streamed and in a form are 413 PUBLISH_TOO_LARGE, nothing left', async () => {
    const state = JSON.stringify(await snapshotState(server));
    const auth = { authorization: `Bearer ${TEST_TOKEN}` };
    // Declared too large: refused from the headers alone, the body never sent.
    const declared = await rawSocket(
      `POST /api/v1/repos/main/musl/packages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_TOKEN}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${MAX_UPLOAD + 1}\r\n\r\n`,
    );
    assert.match(declared, /^HTTP\/1\.1 413 /);
    assert.match(declared, /PUBLISH_TOO_LARGE/);
    // A valid package whose data is larger than the limit, streamed without a length.
    const large = makeApk({
      signer,
      pkginfo: (h) => `${pkginfoLines(h, 'large').join('\n')}\n`,
      dataTar: tar([{ name: 'usr/share/large', body: randomBytes(MAX_UPLOAD + 2 ** 20) }], true),
    }).bytes;
    const streamed = await fetch(`${server.url}/api/v1/repos/main/musl/packages`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      body: new Blob([new Uint8Array(large)]).stream(),
      duplex: 'half',
    } as RequestInit);
    assert.equal(streamed.status, 413);
    assert.equal(((await streamed.json()) as { code: string }).code, 'PUBLISH_TOO_LARGE');
    const form = new FormData();
    form.set('package', new Blob([new Uint8Array(large)]), 'large.apk');
    const multipart = await fetch(`${server.url}/api/v1/repos/main/musl/packages`, {
      method: 'POST',
      headers: auth,
      body: form,
    });
    assert.equal(multipart.status, 413);
    assert.equal(((await multipart.json()) as { code: string }).code, 'PUBLISH_TOO_LARGE');
    assert.equal(JSON.stringify(await snapshotState(server)), state);
  });
});

describe('vanishing uploads', () => {
  test('a client that disconnects mid-upload leaves no temp file and nothing stored', async () => {
    const state = JSON.stringify(await snapshotState(server));
    const body = makeApk({
      signer,
      pkginfo: (h) => `${pkginfoLines(h, 'vanishing').join('\n')}\n`,
      dataTar: tar([{ name: 'usr/share/v', body: randomBytes(3 * 2 ** 20) }], true),
    }).bytes;
    for (const sent of [100, body.length >> 1, body.length - 10]) {
      const socket = await connect();
      socket.write(
        `POST /api/v1/repos/main/musl/packages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_TOKEN}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n\r\n`,
      );
      socket.write(body.subarray(0, sent));
      // Wait until the upload is being written to a temp file, then vanish.
      if (sent > 100) await waitFor(() => readdirSync(join(server.dataDir, 'tmp')).length > 0, 'a temp file');
      socket.destroy();
      await waitFor(() => readdirSync(join(server.dataDir, 'tmp')).length === 0, 'the temp file to go');
    }
    assert.equal(JSON.stringify(await snapshotState(server)), state);
    assert.equal((await fetch(`${server.url}/readyz`)).status, 200);
  });
});

describe('slow clients (request timeout 1.5 s, idle timeout 0.5 s)', () => {
  let slow: TestServer;
  before(async () => {
    slow = await startServer({
      REEF_LOG_LEVEL: 'warn',
      REEF_REQUEST_TIMEOUT_MS: '1500',
      REEF_IDLE_TIMEOUT_MS: '500',
    });
  });
  after(async () => {
    await slow.close();
    removeDir(slow.dataDir);
  });

  const head = `POST /api/v1/repos/main/musl/packages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_TOKEN}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n`;

  test('headers trickled a byte at a time: 408 and the connection closed', async () => {
    const { received, closed } = await trickle(slow, Buffer.from(head), 1, 50);
    assert.ok(closed, 'the server kept the connection');
    assert.match(received, /^HTTP\/1\.1 408 [\s\S]*"code":"REQUEST_TIMEOUT"/);
  });

  test('a body trickled 10 bytes at a time: cut off, no temp file, nothing stored', async () => {
    const state = JSON.stringify(await snapshotState(slow));
    const apk = makeApk({ signer, pkginfo: (h) => `${pkginfoLines(h, 'slow').join('\n')}\n` }).bytes;
    const request = Buffer.concat([
      Buffer.from(head.replace('Content-Length: 1000000', `Content-Length: ${apk.length}`)),
      apk,
    ]);
    const { closed } = await trickle(slow, request, 10, 50, head.length);
    assert.ok(closed, 'the server kept the connection');
    await waitFor(() => readdirSync(join(slow.dataDir, 'tmp')).length === 0, 'the temp file to go');
    assert.equal(JSON.stringify(await snapshotState(slow)), state);
  });

  test('a rejected upload whose client stalls is closed once the request timeout passes', async () => {
    const socket = await connect(slow);
    const received: Buffer[] = [];
    let closed = false;
    socket.on('data', (c: Buffer) => received.push(c));
    socket.on('close', () => {
      closed = true;
    });
    socket.on('error', () => {});
    socket.write(
      `POST /api/v1/repos/main/musl/packages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_TOKEN}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n`,
    );
    socket.write(randomBytes(5000));
    // The server answers at once, keeps reading the body so the client can read the answer, and
    // closes the connection when the request timeout passes (else only at the keep-alive timeout).
    await waitFor(() => closed, 'the server to close the connection');
    const text = Buffer.concat(received).toString('latin1');
    assert.match(text, /^HTTP\/1\.1 400 [\s\S]*APK_NOT_GZIP/);
    assert.match(text, /HTTP\/1\.1 408 /);
    await waitFor(() => readdirSync(join(slow.dataDir, 'tmp')).length === 0, 'the temp file to go');
  });

  test('a stalled upload is closed by the idle timeout, no temp file', async () => {
    const socket = await connect(slow);
    const received: Buffer[] = [];
    let closed = false;
    socket.on('data', (c: Buffer) => received.push(c));
    socket.on('close', () => {
      closed = true;
    });
    socket.on('error', () => {});
    socket.write(head);
    // The start of a real package: the server waits inside the reader for the rest.
    const apk = makeApk({
      signer,
      pkginfo: (h) => `${pkginfoLines(h, 'stalled').join('\n')}\n`,
      dataTar: tar([{ name: 'usr/share/s', body: randomBytes(2 ** 20) }], true),
    }).bytes;
    socket.write(apk.subarray(0, 5000));
    await waitFor(() => closed, 'the server to close the stalled connection');
    // Closed by the idle timeout, before the request timeout would have answered 408.
    assert.equal(Buffer.concat(received).toString('latin1'), '');
    await waitFor(() => readdirSync(join(slow.dataDir, 'tmp')).length === 0, 'the temp file to go');
  });
});

describe('failed logins', () => {
  test('a flood of bad tokens is rate limited (429 AUTH_RATE_LIMITED), good ones from there still pass', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) {
      const r = await raw('GET', '/api/v1/tokens', {
        headers: {
          authorization:
            i % 2 ? `Bearer wrong-token-${i}` : `Basic ${Buffer.from(`u:wrong-${i}`).toString('base64')}`,
        },
      });
      statuses.push(r.status);
      if (r.status === 429) assert.equal(JSON.parse(r.body).code, 'AUTH_RATE_LIMITED');
    }
    assert.deepEqual(statuses, [...Array(20).fill(401), ...Array(10).fill(429)]);
    // Only failures are limited: a valid token from the same address is answered (one proxy may be everyone).
    const good = await raw('GET', '/api/v1/tokens', { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
    assert.equal(good.status, 200);
    const bad = await raw('GET', '/api/v1/tokens', { headers: { authorization: 'Bearer wrong-again' } });
    assert.equal(bad.status, 429);
    // Requests without credentials are not authentication attempts: public reads still work.
    assert.equal((await raw('GET', '/api/v1/repos')).status, 200);
  });
});

function connect(target: TestServer = server): Promise<net.Socket> {
  const { port } = new URL(target.url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), '127.0.0.1', () => resolve(socket));
    socket.on('error', reject);
  });
}

/** Sends `text` and returns what came back once the server closed or answered and went quiet. */
async function rawSocket(text: string): Promise<string> {
  const socket = await connect();
  const parts: Buffer[] = [];
  socket.on('data', (c: Buffer) => parts.push(c));
  socket.on('error', () => {});
  socket.write(text);
  await waitFor(() => parts.length > 0 || socket.destroyed, 'an answer');
  await sleep(50);
  socket.destroy();
  return Buffer.concat(parts).toString('latin1');
}

/** Writes `data` `step` bytes at a time every `everyMs` (after `fast` bytes at once) until the server closes. */
async function trickle(target: TestServer, data: Buffer, step: number, everyMs: number, fast = 0) {
  const socket = await connect(target);
  const parts: Buffer[] = [];
  let closed = false;
  socket.on('data', (c: Buffer) => parts.push(c));
  socket.on('close', () => {
    closed = true;
  });
  socket.on('error', () => {});
  if (fast) socket.write(data.subarray(0, fast));
  for (let at = fast; at < data.length && !closed; at += step) {
    socket.write(data.subarray(at, at + step));
    await sleep(everyMs);
  }
  socket.destroy();
  return { received: Buffer.concat(parts).toString('latin1'), closed };
}

/** Polls `cond` (a state, not a duration, is asserted; the limit only stops a hang). */
async function waitFor(cond: () => boolean, what: string, limitMs = 20_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await sleep(20);
  }
}
