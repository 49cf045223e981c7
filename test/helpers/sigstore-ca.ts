import { createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { bundleToJSON } from '@sigstore/bundle';
import {
  fulcioHandler,
  type HandlerFn,
  initializeCA,
  initializeCTLog,
  initializeTSA,
  tsaHandler,
} from '@sigstore/mock';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { DSSEBundleBuilder, FulcioSigner, type Signer, TSAWitness } from '@sigstore/sign';
import { toTrustMaterial, Verifier } from '@sigstore/verify';

/**
 * A stand-in for Sigstore's public services, for hermetic tests: a CA that
 * issues certificates the way Fulcio does (SAN URI from the token's subject,
 * issuer extensions v1 and v2, an embedded SCT from a test CT log) and an
 * RFC 3161 timestamp authority, served over real HTTP on 127.0.0.1 and driven
 * by @sigstore/sign's own FulcioSigner and TSAWitness. `trustedRoot` is the
 * matching trusted_root.json.
 */

export interface TestSigstore {
  fulcioURL: string;
  tsaURL: string;
  trustedRoot: Record<string, unknown>;
  /** A DSSE bundle of `payload`, keyless, for the identity (OIDC issuer + subject). */
  signKeyless(
    payload: Buffer,
    identity: { issuer: string; subject: string },
  ): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

const p256 = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });
const b64 = (bytes: ArrayBufferView) =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
const ALWAYS = { start: '2000-01-01T00:00:00Z' };

/** An unsigned OIDC token: FulcioSigner only reads its claims, and the mock CA trusts them. */
function fakeToken(claims: Record<string, unknown>): string {
  const part = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'none', typ: 'JWT' })}.${part({ aud: 'sigstore', ...claims })}.`;
}

async function serve(handlers: Record<string, HandlerFn>): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    const respond = async () => {
      const handler = handlers[req.url ?? ''];
      if (!handler) {
        res.writeHead(404).end();
        return;
      }
      const out = await handler(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(out.statusCode, { 'Content-Type': out.contentType ?? 'application/octet-stream' });
      res.end(typeof out.response === 'string' ? out.response : Buffer.from(out.response.buffer));
    };
    // A mock that fails answers 500 rather than leaving the client waiting on an unhandled rejection.
    req.on('end', () => {
      respond().catch((err: unknown) => res.writeHead(500).end(String(err)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/**
 * A time for the mock TSA to stamp: a whole second (its trimmed fractions
 * trip @sigstore/core's parser, sigstore-js packages/core/src/asn1/parse.ts),
 * two seconds ahead.
 * The mock's root and TSA certificates are valid from the second they are
 * created, and a stamp from before that second fails as TIMESTAMP_ERROR:
 * a stamp at the current second, floored, did so whenever creating the CAs
 * crossed into the next second.
 */
export function stampTime(): Date {
  return new Date(Math.floor(Date.now() / 1000) * 1000 + 2_000);
}

/**
 * `certTime` is when certificates are issued (valid for 10 minutes, as
 * Fulcio's); `timestampTime` when the TSA stamps. A stamp after the
 * certificate expired makes an expired-certificate bundle.
 */
export async function startTestSigstore(
  options: { certTime?: Date; timestampTime?: Date } = {},
): Promise<TestSigstore> {
  const timestampTime = options.timestampTime ?? stampTime();
  const certTime = options.certTime ?? new Date(timestampTime.getTime() - 60_000);
  const ctlog = await initializeCTLog(p256(), certTime);
  const ca = await initializeCA(p256(), ctlog, certTime);
  const tsa = await initializeTSA(p256(), timestampTime);
  const fulcio = fulcioHandler(ca);
  const stamp = tsaHandler(tsa);
  const { server, url } = await serve({ [fulcio.path]: fulcio.fn, [stamp.path]: stamp.fn });

  const trustedRoot = {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [],
    certificateAuthorities: [
      {
        subject: { organization: 'sigstore.mock', commonName: 'sigstore' },
        uri: url,
        certChain: { certificates: [{ rawBytes: b64(ca.rootCertificate) }] },
        validFor: ALWAYS,
      },
    ],
    ctlogs: [
      {
        baseUrl: 'https://ctfe.test',
        hashAlgorithm: 'SHA2_256',
        publicKey: {
          rawBytes: b64(ctlog.publicKey),
          keyDetails: 'PKIX_ECDSA_P256_SHA_256',
          validFor: ALWAYS,
        },
        logId: { keyId: b64(ctlog.logID) },
      },
    ],
    timestampAuthorities: [
      {
        subject: { organization: 'sigstore.mock', commonName: 'tsa' },
        uri: url,
        certChain: {
          certificates: [{ rawBytes: b64(tsa.intCertificate) }, { rawBytes: b64(tsa.rootCertificate) }],
        },
        validFor: ALWAYS,
      },
    ],
  };

  return {
    fulcioURL: url,
    tsaURL: url,
    trustedRoot,
    async signKeyless(payload, identity) {
      const signer = new FulcioSigner({
        fulcioBaseURL: url,
        identityProvider: {
          getToken: async () => fakeToken({ iss: identity.issuer, sub: identity.subject }),
        },
      });
      const bundle = await new DSSEBundleBuilder({
        signer,
        witnesses: [new TSAWitness({ tsaBaseURL: url })],
      }).create({
        data: payload,
        type: 'application/vnd.in-toto+json',
      });
      return bundleToJSON(bundle) as unknown as Record<string, unknown>;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A DSSE bundle of `payload` signed with a local key (no certificate, no log). */
export async function signWithKey(
  payload: Buffer,
  privateKey: KeyObject,
  publicPem: string,
): Promise<Record<string, unknown>> {
  const signer: Signer = {
    sign: async (data) => ({
      signature: sign('sha256', data, privateKey),
      key: { $case: 'publicKey', publicKey: publicPem, hint: 'publisher' },
    }),
  };
  const bundle = await new DSSEBundleBuilder({ signer, witnesses: [] }).create({
    data: payload,
    type: 'application/vnd.in-toto+json',
  });
  return bundleToJSON(bundle) as unknown as Record<string, unknown>;
}

/** An in-toto Statement v1 with a SLSA provenance v1 predicate, as GitHub's generator writes one. */
export function slsaStatement(
  subject: { name: string; sha256: string },
  repository = 'https://github.com/acme/pkgs',
) {
  return {
    _type: 'https://in-toto.io/Statement/v1',
    subject: [{ name: subject.name, digest: { sha256: subject.sha256 } }],
    predicateType: 'https://slsa.dev/provenance/v1',
    predicate: {
      buildDefinition: {
        buildType: 'https://actions.github.io/buildtypes/workflow/v1',
        externalParameters: {
          workflow: { ref: 'refs/heads/main', repository, path: '.github/workflows/release.yml' },
        },
        resolvedDependencies: [
          {
            uri: `git+${repository}@refs/heads/main`,
            digest: { gitCommit: '0123456789abcdef0123456789abcdef01234567' },
          },
        ],
      },
      runDetails: {
        builder: { id: 'https://github.com/actions/runner/github-hosted' },
        metadata: { invocationId: `${repository}/actions/runs/1/attempts/1` },
      },
    },
  };
}

/** Trust only `publicPem`: no CA, no log, whatever key hint the bundle carries (its signer picks it). */
export function keyVerifier(publicPem: string) {
  const root = TrustedRoot.fromJSON({
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [],
    certificateAuthorities: [],
    ctlogs: [],
    timestampAuthorities: [],
  });
  const publicKey = createPublicKey(publicPem);
  const material = toTrustMaterial(root, () => ({ publicKey, validFor: () => true }));
  material.certificateAuthorities = [];
  return new Verifier(material, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
}
