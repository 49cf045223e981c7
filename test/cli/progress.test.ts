import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatBytes, ProgressBar, renderProgress } from '../../src/cli/progress.ts';

test('renderProgress fits the terminal width and counts bytes', () => {
  const line = renderProgress('hello-1.0-r0.apk', 512 * 1024, 2 * 1024 * 1024, 80);
  assert.equal(line.length, 79, 'one column spare, so the cursor never wraps');
  assert.match(line, /^hello-1\.0-r0\.apk \[#+-+\] {2}25% {2}512\.0 KiB\/2\.0 MiB$/);
  assert.match(renderProgress('x.apk', 10, 10, 40), /\[#+\] 100%/);
  assert.equal(formatBytes(1023), '1023 B');
  assert.equal(formatBytes(3 * 1024 ** 3), '3.0 GiB');
});

test('the bar draws on a TTY only, and stays cleared once finished', () => {
  const written: string[] = [];
  const tty = { isTTY: true, columns: 60, write: (s: string) => written.push(s) > 0 };
  const bar = new ProgressBar(tty, 'a.apk', 100);
  bar.add(100);
  bar.finish();
  bar.add(100);
  assert.equal(written.length, 2);
  assert.match(written[0]!, /^\ra\.apk \[#+\] 100%/);
  assert.equal(written[1], '\r\x1b[2K');

  const pipe: string[] = [];
  const quiet = new ProgressBar({ write: (s: string) => pipe.push(s) > 0 }, 'a.apk', 100);
  quiet.add(50);
  quiet.finish();
  assert.deepEqual(pipe, []);
});
