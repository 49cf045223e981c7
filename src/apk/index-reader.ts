import { AppError, isAppError } from '../errors.ts';
import { readGzipMembers } from './gzip-members.ts';
import {
  type PublicKeyEntry,
  parseSignatureName,
  type SignatureEntry,
  type VerificationResult,
  verifySignatures,
} from './signature.ts';
import { type TarEntry, TarReader } from './tar-reader.ts';

/**
 * Reads APKINDEX.tar.gz (abuild abuild-sign.in, apk3 src/extract_v2.c):
 * signature member(s), then exactly one gzip member with DESCRIPTION and
 * APKINDEX, signed over its raw bytes.
 */

export interface IndexRecord {
  /** Every line of the record in order, as [letter, value]. */
  fields: Array<[string, string]>;
  name: string;
  version: string;
  arch: string;
  checksum: string;
  size: number;
  installedSize: number;
}

export interface ApkIndex {
  description: string | undefined;
  records: IndexRecord[];
  signatures: SignatureEntry[];
  /** Present when keys were given. */
  verification: VerificationResult | undefined;
}

export interface ReadIndexOptions {
  /** Keys to verify with; with `requireValidSignature` one of them must verify. */
  keys?: PublicKeyEntry[];
  requireValidSignature?: boolean;
  maxCompressedBytes?: number;
  maxDecompressedBytes?: number;
}

const MAX_ENTRY_BYTES = 512 * 2 ** 20;

export async function readIndex(
  source: AsyncIterable<Uint8Array>,
  options: ReadIndexOptions = {},
): Promise<ApkIndex> {
  const signatures: SignatureEntry[] = [];
  let role: 'signature' | 'index' | undefined;
  let indexMembers = 0;
  const indexRaw: Buffer[] = [];
  let description: string | undefined;
  let apkindex: Buffer | undefined;
  let collecting: { name: string; parts: Buffer[] } | undefined;

  const tar = new TarReader(
    {
      entry(entry: TarEntry) {
        if (role === undefined) role = entry.name.startsWith('.SIGN.') ? 'signature' : 'index';
        if (role === 'signature' && !entry.name.startsWith('.SIGN.')) {
          throw new AppError(
            'INDEX_CORRUPT',
            `the signature member of the index holds '${entry.name.slice(0, 100)}'`,
          );
        }
        if (role === 'index' && entry.name.startsWith('.SIGN.')) {
          throw new AppError(
            'INDEX_CORRUPT',
            'a signature sits inside the index member; apk needs it in a gzip member of its own, before the index',
          );
        }
        if (entry.size > MAX_ENTRY_BYTES)
          throw new AppError('INDEX_TOO_LARGE', `index entry '${entry.name}' is too large`);
        // Other names are ignored by apk (apk2 src/database.c, apk3 src/extract_v2.c).
        if (role === 'signature' || entry.name === 'APKINDEX' || entry.name === 'DESCRIPTION') {
          collecting = { name: entry.name, parts: [] };
        }
      },
      body(chunk) {
        collecting?.parts.push(Buffer.from(chunk));
      },
      entryEnd() {
        if (!collecting) return;
        const body = Buffer.concat(collecting.parts);
        if (role === 'signature') {
          const { algorithm, keyName } = parseSignatureName(collecting.name);
          signatures.push({ algorithm, keyName, signature: body });
        } else if (collecting.name === 'APKINDEX') {
          apkindex = body;
        } else {
          description = body.toString('utf8');
        }
        collecting = undefined;
      },
    },
    { maxEntries: 1000, maxNameLength: 4096, maxMetaBytes: 64 * 1024 },
  );

  try {
    await readGzipMembers(
      source,
      {
        memberStart() {
          if (role === 'index') {
            throw new AppError(
              'INDEX_CORRUPT',
              'the index content spans several gzip members; apk 3 needs exactly one after the signature',
            );
          }
          role = undefined;
        },
        raw(chunk) {
          // Role is decided by the member's first entry; only index-member bytes are kept.
          indexRaw.push(chunk);
        },
        data(chunk) {
          tar.write(chunk);
        },
        memberEnd() {
          if (role === undefined)
            throw new AppError('INDEX_CORRUPT', 'a gzip member of the index holds no tar entries');
          if (role === 'signature') {
            if (tar.zeroBlocks > 0 || !tar.atHeaderBoundary) {
              throw new AppError(
                'INDEX_CORRUPT',
                'the signature member holds end-of-archive blocks or a cut entry',
              );
            }
            indexRaw.length = 0;
          } else {
            indexMembers++;
          }
        },
      },
      {
        maxCompressedBytes: options.maxCompressedBytes ?? 256 * 2 ** 20,
        maxDecompressedBytes: options.maxDecompressedBytes ?? 4 * 1024 * 2 ** 20,
        maxRatio: 1000,
        ratioFloorBytes: 64 * 2 ** 20,
      },
    );
    tar.end();
  } catch (err) {
    if (isAppError(err) && err.code.startsWith('APK_')) {
      const code =
        err.code === 'APK_NOT_GZIP'
          ? 'INDEX_NOT_GZIP'
          : err.kind === 'too_large'
            ? 'INDEX_TOO_LARGE'
            : 'INDEX_CORRUPT';
      throw new AppError(code, `not a valid APKINDEX.tar.gz: ${err.message}`, { cause: err });
    }
    throw err;
  }
  if (indexMembers !== 1 || !apkindex) {
    throw new AppError('INDEX_MISSING_APKINDEX', 'the index has no APKINDEX file');
  }

  let verification: VerificationResult | undefined;
  if (options.keys) {
    verification = verifySignatures(Buffer.concat(indexRaw), signatures, options.keys);
  }
  if (options.requireValidSignature) {
    if (signatures.length === 0) throw new AppError('INDEX_UNSIGNED', 'the index carries no signature');
    if (!verification?.verifiedBy) {
      throw new AppError(
        'INDEX_SIGNATURE_INVALID',
        'no signature of the index verifies with the given keys',
        {
          details: { checks: verification?.checks ?? [] },
        },
      );
    }
  }
  return { description, records: parseIndexText(apkindex.toString('utf8')), signatures, verification };
}

/**
 * APKINDEX text: records of `X:value` lines, ended by a line shorter than two
 * bytes (apk2 src/database.c `apk_db_index_read`). A line whose second byte
 * is not ':' makes apk reject the index.
 */
export function parseIndexText(text: string): IndexRecord[] {
  const records: IndexRecord[] = [];
  let fields: Array<[string, string]> = [];
  const flush = () => {
    if (fields.length > 0) records.push(toRecord(fields, records.length));
    fields = [];
  };
  for (const line of text.split('\n')) {
    if (line.length < 2) {
      flush();
      continue;
    }
    if (line[1] !== ':') {
      throw new AppError('INDEX_BAD_RECORD', `index line '${line.slice(0, 60)}' is not of the form X:value`);
    }
    fields.push([line[0]!, line.slice(2)]);
  }
  flush();
  return records;
}

function toRecord(fields: Array<[string, string]>, n: number): IndexRecord {
  const get = (letter: string) => fields.find(([l]) => l === letter)?.[1];
  const name = get('P');
  const version = get('V');
  const checksum = get('C');
  if (!name || !version || !checksum) {
    throw new AppError('INDEX_BAD_RECORD', `index record ${n + 1} lacks P:, V: or C:`);
  }
  return {
    fields,
    name,
    version,
    arch: get('A') ?? '',
    checksum,
    size: Number(get('S') ?? 0),
    installedSize: Number(get('I') ?? 0),
  };
}
