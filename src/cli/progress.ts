import type { Output } from './command.ts';

/** A one-line progress bar on a terminal; silent when the stream is not a TTY. */
export class ProgressBar {
  private done = 0;
  private lastDraw = 0;
  private enabled: boolean;

  constructor(
    private readonly out: Output,
    private readonly label: string,
    private readonly total: number,
  ) {
    this.enabled = out.isTTY === true && total > 0;
  }

  add(bytes: number): void {
    this.done += bytes;
    if (!this.enabled) return;
    const now = Date.now();
    // A redraw at most 10 times a second, and always at 100%.
    if (now - this.lastDraw < 100 && this.done < this.total) return;
    this.lastDraw = now;
    this.out.write(`\r${renderProgress(this.label, this.done, this.total, this.out.columns || 80)}`);
  }

  /** Clears the bar for good, so the next line starts clean (the server may answer before all is sent). */
  finish(): void {
    if (this.enabled && this.lastDraw > 0) this.out.write('\r\x1b[2K');
    this.enabled = false;
  }
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** `label [#####-----]  50%  1.0 KiB/2.0 KiB`, fitted into `width` columns. */
export function renderProgress(label: string, done: number, total: number, width: number): string {
  const fraction = total > 0 ? Math.min(1, done / total) : 1;
  const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
  const counts = `${formatBytes(Math.min(done, total))}/${formatBytes(total)}`;
  const tail = ` ${percent}  ${counts}`;
  const name = label.length > 30 ? `…${label.slice(-29)}` : label;
  const barWidth = Math.max(10, width - 1 - name.length - 3 - tail.length);
  const filled = Math.round(fraction * barWidth);
  return `${name} [${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}]${tail}`;
}
