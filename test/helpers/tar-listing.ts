import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** One data tar entry as the file list API answers it. */
export interface ListedEntry {
  path: string;
  type: string;
  mode: number;
  size: number;
  linkTarget?: string;
}

/** An entry as GNU tar lists it, with the mode as it prints it (`-rwxr-xr-x`). */
export interface TarLine extends ListedEntry {
  modeText: string;
}

/**
 * The data member of an .apk as GNU tar lists it: Python's zlib finds where
 * each gzip member ends (the data member is the last), `tar -tvz` reads it.
 * Neither shares code with reef's parser. Names must be plain (tar quotes
 * control characters); `dir` is a scratch folder.
 */
export function tarListing(apk: Buffer, dir: string): TarLine[] {
  const apkFile = join(dir, 'package.apk');
  writeFileSync(apkFile, apk);
  const data = execFileSync('python3', [
    '-c',
    [
      'import sys,zlib',
      'b=open(sys.argv[1],"rb").read()',
      'start=0',
      'while True:',
      '  d=zlib.decompressobj(31); d.decompress(b[start:]); end=len(b)-len(d.unused_data)',
      '  if end==len(b): break',
      '  start=end',
      'sys.stdout.buffer.write(b[start:])',
    ].join('\n'),
    apkFile,
  ]);
  const dataFile = join(dir, 'data.tar.gz');
  writeFileSync(dataFile, data);
  // stderr: GNU tar notes the APK-TOOLS.checksum.SHA1 pax keyword it does not know.
  const out = execFileSync('tar', ['-tvzf', dataFile, '--numeric-owner'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const types: Record<string, string> = { '-': 'file', d: 'directory', l: 'symlink', h: 'hardlink' };
  return out
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const m = /^((.)(\S{9})) \S+\s+(\d+) \S+ \S+ (.*)$/.exec(line);
      assert.ok(m, line);
      const [, modeText, letter, perms, size, rest] = m as unknown as string[];
      const type = types[letter!];
      assert.ok(type, line);
      const split = type === 'symlink' ? ' -> ' : type === 'hardlink' ? ' link to ' : undefined;
      const [path, linkTarget] = split ? rest!.split(split) : [rest];
      const entry: TarLine = {
        path: path!,
        type,
        mode: modeOf(perms!),
        size: Number(size),
        modeText: modeText!,
      };
      if (linkTarget !== undefined) entry.linkTarget = linkTarget;
      return entry;
    });
}

/** `rwsr-xr-x` → 0o4755. */
function modeOf(perms: string): number {
  let mode = 0;
  for (let i = 0; i < 9; i++) {
    const c = perms[i]!;
    if (c !== '-' && c !== 'S' && c !== 'T') mode |= 1 << (8 - i);
  }
  if (/[sS]/.test(perms[2]!)) mode |= 0o4000;
  if (/[sS]/.test(perms[5]!)) mode |= 0o2000;
  if (/[tT]/.test(perms[8]!)) mode |= 0o1000;
  return mode;
}
