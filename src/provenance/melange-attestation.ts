import { streamOf } from '../apk/byte-source.ts';
import { readGzipMembers } from '../apk/gzip-members.ts';
import { parseSignatureName, type SignatureEntry } from '../apk/signature.ts';
import { printable, type TarEntry, TarReader } from '../apk/tar-reader.ts';
import { AppError } from '../errors.ts';

/**
 * melange's `<name>-<version>.attest.tar.gz` (melange pkg/build/package.go):
 * an optional signature member (`.SIGN.RSA256.<key>`, over the raw bytes of
 * the next member, as in a package) and one gzip member whose tar holds
 * `<name>-<version>.attestation`, an unsigned in-toto statement.
 */

export interface MelangeAttestation {
  /** The tar entry's name, `<name>-<version>.attestation`. */
  entryName: string;
  statement: Buffer;
  signatures: SignatureEntry[];
  /** Raw bytes of the attestation member: what the signatures sign. */
  signedMember: Buffer;
}

export const MAX_ATTESTATION_BYTES = 4 * 1024 * 1024;

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);

export function isGzip(bytes: Buffer): boolean {
  return bytes.subarray(0, 2).equals(GZIP_MAGIC);
}

function invalid(message: string): AppError {
  return new AppError('PROVENANCE_INVALID', `the melange attestation is malformed: ${message}`);
}

/**
 * Reads the attestation; every defect is PROVENANCE_INVALID, every limit
 * PROVENANCE_TOO_LARGE (the gzip and tar readers' own codes name package parts).
 */
export async function readMelangeAttestation(bytes: Buffer): Promise<MelangeAttestation> {
  try {
    return await readAttestation(bytes);
  } catch (err) {
    if (!(err instanceof AppError) || err.code.startsWith('PROVENANCE_')) throw err;
    if (err.kind === 'too_large') {
      throw new AppError('PROVENANCE_TOO_LARGE', `the melange attestation exceeds a limit: ${err.message}`, {
        cause: err,
      });
    }
    throw new AppError('PROVENANCE_INVALID', `the melange attestation is malformed: ${err.message}`, {
      cause: err,
    });
  }
}

async function readAttestation(bytes: Buffer): Promise<MelangeAttestation> {
  if (bytes.length > MAX_ATTESTATION_BYTES) {
    throw new AppError(
      'PROVENANCE_TOO_LARGE',
      `the attestation is larger than ${MAX_ATTESTATION_BYTES} bytes`,
    );
  }
  const signatures: SignatureEntry[] = [];
  let role: 'signature' | 'attestation' | undefined;
  let memberRaw: Buffer[] = [];
  let signedMember: Buffer | undefined;
  let entryName: string | undefined;
  let statement: Buffer | undefined;
  let collecting: { kind: 'signature' | 'statement'; parts: Buffer[] } | undefined;
  let members = 0;

  const tar = new TarReader(
    {
      entry(entry: TarEntry) {
        role ??= entry.name.startsWith('.SIGN.') ? 'signature' : 'attestation';
        if (role === 'signature') {
          if (!entry.name.startsWith('.SIGN.') || entry.type !== 'file') {
            throw invalid(`the signature member holds '${printable(entry.name)}'`);
          }
          collecting = { kind: 'signature', parts: [] };
          return;
        }
        if (entry.name.startsWith('.SIGN.')) throw invalid('a signature sits inside the attestation member');
        if (entryName !== undefined) throw invalid('it holds more than one file');
        if (entry.type !== 'file' || !entry.name.endsWith('.attestation') || entry.name.includes('/')) {
          throw invalid(`it holds '${printable(entry.name)}'; expected <name>-<version>.attestation`);
        }
        entryName = entry.name;
        collecting = { kind: 'statement', parts: [] };
      },
      body(chunk: Buffer) {
        collecting?.parts.push(Buffer.from(chunk));
      },
      entryEnd(entry: TarEntry) {
        if (!collecting) return;
        const body = Buffer.concat(collecting.parts);
        if (collecting.kind === 'signature') {
          const { algorithm, keyName } = parseSignatureName(entry.name);
          signatures.push({ algorithm, keyName, signature: body });
        } else {
          statement = body;
        }
        collecting = undefined;
      },
    },
    { maxEntries: 16, maxNameLength: 1024, maxMetaBytes: 64 * 1024 },
  );

  await readGzipMembers(
    streamOf(bytes),
    {
      memberStart(index) {
        if (index > 1) throw invalid('it has more than two gzip members');
        if (index === 1 && role !== 'signature')
          throw invalid('only a signature member may precede the attestation');
        members = index + 1;
        memberRaw = [];
        if (index === 1) role = 'attestation';
      },
      raw(chunk) {
        memberRaw.push(chunk);
      },
      data(chunk) {
        tar.write(chunk);
      },
      memberEnd() {
        if (role === 'signature' && tar.zeroBlocks > 0) {
          throw invalid('the signature member contains tar end-of-archive blocks');
        }
        if (!tar.atHeaderBoundary) throw invalid('a gzip member ends inside a tar entry');
        if (role === 'attestation') signedMember = Buffer.concat(memberRaw);
      },
    },
    {
      maxCompressedBytes: MAX_ATTESTATION_BYTES,
      maxDecompressedBytes: 4 * MAX_ATTESTATION_BYTES,
      maxRatio: 200,
      ratioFloorBytes: 1024 * 1024,
    },
  );
  tar.end();
  if (role === 'signature' && members === 1) throw invalid('it holds signatures but no attestation');
  if (!entryName || !statement || !signedMember) throw invalid('it holds no .attestation file');
  return { entryName, statement, signatures, signedMember };
}
