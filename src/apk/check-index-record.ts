import { AppError } from '../errors.ts';
import { INDEX_LETTER_KEYS, MAX_INDEX_LINE, MAX_INDEX_RECORD, MAX_RECORD_HEADER } from './index-limits.ts';
import { type IndexEntry, renderIndexRecord } from './index-writer.ts';
import { APK_ARCHES } from './pkginfo.ts';

/** The longest arch a noarch record is rewritten to (abuild abuild.in): its record is measured with it. */
const LONGEST_ARCH = [...APK_ARCHES].reduce((a, b) => (b.length > a.length ? b : a));

/**
 * SECURITY: refuses a record that apk 2 or 3 could not read back, from the
 * index or from its installed database (index-limits.ts), naming the fields
 * that make it too long. Per-field limits alone do not ensure this: the
 * `C:` … `k:` lines must fit one 2048-byte buffer together.
 */
export function checkIndexRecord(e: IndexEntry): void {
  const arch = e.arch === 'noarch' ? LONGEST_ARCH : e.arch;
  const record = renderIndexRecord({ ...e, arch }, arch);
  const lines = record.slice(0, -2).split('\n');
  const sizes = lines.map((line) => ({ letter: line[0]!, bytes: Buffer.byteLength(line) + 1 }));
  const keyOf = (letter: string) => INDEX_LETTER_KEYS[letter] ?? `${letter}:`;
  const refuse = (what: string, bytes: number, limit: number, parts: typeof sizes): never => {
    const longest = [...parts].sort((a, b) => b.bytes - a.bytes).slice(0, 3);
    const named = longest.map((s) => `${keyOf(s.letter)} (${s.bytes} bytes)`).join(', ');
    throw new AppError(
      'APK_INDEX_RECORD_TOO_LONG',
      `${what} would be ${bytes} bytes, over the ${limit} that apk 2 and 3 read back; the longest parts are ${named}`,
      {
        details: {
          field: keyOf(longest[0]!.letter),
          fields: longest.map((s) => keyOf(s.letter)),
          bytes,
          limit,
        },
      },
    );
  };
  for (const s of sizes) {
    if (s.bytes > MAX_INDEX_LINE) refuse(`the index line ${s.letter}:`, s.bytes, MAX_INDEX_LINE, [s]);
  }
  // apk_pkg_write_index_header writes every line but the D: p: i: lists into one buffer.
  const header = sizes.filter((s) => !'Dpi'.includes(s.letter));
  const headerBytes = header.reduce((n, s) => n + s.bytes, 0);
  if (headerBytes > MAX_RECORD_HEADER) {
    refuse('the index record without its D: p: i: lines', headerBytes, MAX_RECORD_HEADER, header);
  }
  const recordBytes = Buffer.byteLength(record);
  if (recordBytes > MAX_INDEX_RECORD) refuse('the index record', recordBytes, MAX_INDEX_RECORD, sizes);
}
