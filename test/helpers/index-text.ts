import { execFileSync } from 'node:child_process';

/**
 * `<P>-<V>.apk` → `S:` of every record of an APKINDEX.tar.gz, read with tar
 * and by hand: an oracle independent of reef's own index reader.
 */
export function indexSizesWithTar(indexFile: string): Map<string, number> {
  const text = execFileSync('tar', ['-xzOf', indexFile, 'APKINDEX'], {
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  const records = new Map<string, number>();
  for (const block of text.split('\n\n').filter((b) => b.trim())) {
    const field = (k: string) =>
      block
        .split('\n')
        .find((l) => l.startsWith(`${k}:`))
        ?.slice(2);
    records.set(`${field('P')}-${field('V')}.apk`, Number(field('S')));
  }
  return records;
}
