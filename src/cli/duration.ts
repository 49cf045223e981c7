import { usageError } from './command.ts';

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** The API's longest token lifetime (ten years). */
const MAX_MS = 10 * 365 * 86_400_000;

/** `30d`, `12h`, `15m`, `3600s` → milliseconds; anything else is a usage error. */
export function parseDuration(text: string): number {
  const m = /^(\d{1,12})([smhd])$/.exec(text.trim());
  const ms = m ? Number(m[1]) * UNITS[m[2]!]! : Number.NaN;
  if (!(ms > 0) || ms > MAX_MS) {
    throw usageError(
      `--expires '${text.slice(0, 40)}' is invalid: use a number and a unit s, m, h or d (e.g. 30d, 12h, 3600s), at most 3650d`,
    );
  }
  return ms;
}
