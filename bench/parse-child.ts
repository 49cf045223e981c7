import { createReadStream } from 'node:fs';
import { readApk } from '../src/apk/read-apk.ts';

/**
 * Parses one .apk and prints what parse.ts measures, as one JSON line. Runs in
 * a process of its own so that peak RSS is the parse's alone.
 *
 * usage: node --import tsx bench/parse-child.ts FILE
 */

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: parse-child.ts FILE\n');
  process.exit(2);
}

const rssBeforeKB = Math.round(process.memoryUsage().rss / 1024);
const usageBefore = process.resourceUsage();
const started = performance.now();
const pkg = await readApk(createReadStream(file, { highWaterMark: 1 << 20 }));
const ms = performance.now() - started;
const usage = process.resourceUsage();

process.stdout.write(
  `${JSON.stringify({
    ms,
    maxRssKB: usage.maxRSS,
    rssBeforeKB,
    cpuUserMs: (usage.userCPUTime - usageBefore.userCPUTime) / 1000,
    cpuSystemMs: (usage.systemCPUTime - usageBefore.systemCPUTime) / 1000,
    size: pkg.size,
    files: pkg.files.length,
    datahashMatches: pkg.datahashMatches,
    members: pkg.members,
  })}\n`,
);
