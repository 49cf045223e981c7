import { parseDocument } from 'yaml';
import { z } from 'zod';
import { isValidVersion } from '../apk/version.ts';
import { AppError } from '../errors.ts';

/**
 * A package's security advisories: the document a distro's security team
 * keeps per source package, in the shape of Wolfi's advisory YAML, schema
 * version 2 (chainguard-dev/advisory-schema, pkg/advisory/v2), so a Wolfi
 * advisories repository imports as is.
 * reef adds one event type, `withdrawn`. Pure: parse, validate, decide the
 * current state; nothing here stores or serves.
 */

/** The newest schema version reef reads and the one it writes. */
export const SCHEMA_VERSION = '2.0.2';

/** A Wolfi false-positive determination's kinds (advisory-schema v2 `FalsePositiveDetermination`). */
export const FALSE_POSITIVE_TYPES = [
  'vulnerability-record-analysis-contested',
  'component-vulnerability-mismatch',
  'vulnerable-code-version-not-used',
  'vulnerable-code-not-included-in-package',
  'vulnerable-code-not-in-execution-path',
  'vulnerable-code-cannot-be-controlled-by-adversary',
  'inline-mitigations-exist',
] as const;

export const EVENT_TYPES = [
  'detection',
  'true-positive-determination',
  'fixed',
  'false-positive-determination',
  'analysis-not-planned',
  'fix-not-planned',
  'pending-upstream-fix',
  // reef's own: the advisory was a mistake (a duplicate, a wrong package); feeds leave it out.
  'withdrawn',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Bounds: a real package's file holds tens of advisories; Wolfi's largest a few hundred. */
export const ADVISORY_LIMITS = {
  documentBytes: 1024 * 1024,
  advisories: 5000,
  eventsPerAdvisory: 200,
  aliasesPerAdvisory: 50,
  noteBytes: 8192,
  valueBytes: 1024,
} as const;

const boundedText = (max: number) =>
  z.string().refine((s) => Buffer.byteLength(s) <= max, { message: `at most ${max} bytes` });
const note = boundedText(ADVISORY_LIMITS.noteBytes).optional();
const value = boundedText(ADVISORY_LIMITS.valueBytes);

/**
 * Advisory ids and aliases: CGA-…, REEF-…, CVE-…, GHSA-…, GO-…; one token,
 * since secdb consumers split an entry on whitespace.
 */
export const ADVISORY_ID_RE = /^[A-Za-z][A-Za-z0-9]{0,15}-[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/;
const advisoryId = z.string().regex(ADVISORY_ID_RE, {
  message: 'an id such as CVE-2024-1234, GHSA-xxxx-xxxx-xxxx or CGA-xxxx-xxxx-xxxx (no spaces)',
});

/** RFC 3339 in UTC or with an offset, as the YAML files write it (2023-02-07T16:49:30Z). */
const timestamp = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/, {
    message: 'an RFC 3339 time such as 2024-01-31T12:00:00Z',
  })
  .refine((s) => !Number.isNaN(Date.parse(s)), { message: 'not a real date' });

const noteOnly = z.strictObject({ note }).optional();

const eventSchema = z.discriminatedUnion('type', [
  z.strictObject({
    timestamp,
    type: z.literal('detection'),
    data: z.strictObject({
      type: z.enum(['manual', 'nvdapi', 'scan/v1']),
      // What found it (CPEs searched, scanner and component): flat strings only.
      data: z.record(z.string(), value).optional(),
    }),
  }),
  z.strictObject({ timestamp, type: z.literal('true-positive-determination'), data: noteOnly }),
  z.strictObject({
    timestamp,
    type: z.literal('fixed'),
    data: z.strictObject({
      'fixed-version': z
        .string()
        .max(128)
        .refine((v) => isValidVersion(v) && /-r\d+$/.test(v), {
          message: 'a full apk version with its release, such as 1.2.3-r4',
        }),
    }),
  }),
  z.strictObject({
    timestamp,
    type: z.literal('false-positive-determination'),
    data: z.strictObject({ type: z.enum(FALSE_POSITIVE_TYPES), note }),
  }),
  z.strictObject({ timestamp, type: z.literal('analysis-not-planned'), data: noteOnly }),
  z.strictObject({ timestamp, type: z.literal('fix-not-planned'), data: noteOnly }),
  z.strictObject({ timestamp, type: z.literal('pending-upstream-fix'), data: noteOnly }),
  z.strictObject({ timestamp, type: z.literal('withdrawn'), data: noteOnly }),
]);
export type AdvisoryEvent = z.infer<typeof eventSchema>;

const advisorySchema = z.strictObject({
  id: advisoryId,
  aliases: z.array(advisoryId).max(ADVISORY_LIMITS.aliasesPerAdvisory).optional(),
  events: z.array(eventSchema).min(1).max(ADVISORY_LIMITS.eventsPerAdvisory),
});
export type Advisory = z.infer<typeof advisorySchema>;

/** An apk package name as advisory documents and their URLs name it. */
export const PACKAGE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;

const documentSchema = z.strictObject({
  'schema-version': z.union([z.string(), z.number()]).optional(),
  package: z.strictObject({
    name: z.string().regex(PACKAGE_NAME_RE, { message: 'an apk package name' }),
  }),
  advisories: z.array(advisorySchema).min(1).max(ADVISORY_LIMITS.advisories),
});

/** One package's advisories, validated: what reef stores and serves. */
export interface AdvisoryDocument {
  /** The source package (apk origin) the advisories are about. */
  package: string;
  advisories: Advisory[];
}

const invalid = (message: string, field?: string) =>
  new AppError('ADVISORY_INVALID', field ? `${field}: ${message}` : message, {
    details: field ? { field } : undefined,
  });

/** `advisories[2].events[0].data.fixed-version`, as a user finds it in the file. */
function fieldPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || '(document)';
}

/** Checks the schema version: v2 in any of its spellings; v1 and anything newer are refused. */
function checkSchemaVersion(v: string | number | undefined): void {
  if (v === undefined) {
    throw invalid(
      'missing: schema version 1 files are not read; migrate them to version 2 (wolfictl adv migrate)',
      'schema-version',
    );
  }
  const text = String(v);
  if (!/^2(\.0(\.[0-2])?)?$/.test(text)) {
    throw invalid(
      `'${text.slice(0, 20)}' is not one reef reads; it reads 2 up to ${SCHEMA_VERSION}`,
      'schema-version',
    );
  }
}

/**
 * Validates a parsed document. ids and aliases must be unique across it
 * (an alias may not repeat another advisory's id or alias), as Wolfi requires.
 */
export function validateAdvisoryDocument(json: unknown): AdvisoryDocument {
  const parsed = documentSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = fieldPath(issue.path);
    if (issue.path.at(-1) === 'type' && issue.code === 'invalid_union') {
      throw invalid(`unknown event type; known: ${EVENT_TYPES.join(', ')}`, field);
    }
    throw invalid(issue.message, field);
  }
  checkSchemaVersion(parsed.data['schema-version']);
  const seen = new Map<string, string>();
  parsed.data.advisories.forEach((advisory, i) => {
    for (const [j, id] of [advisory.id, ...(advisory.aliases ?? [])].entries()) {
      const field = j === 0 ? `advisories[${i}].id` : `advisories[${i}].aliases[${j - 1}]`;
      const before = seen.get(id);
      if (before)
        throw invalid(
          `'${id}' appears twice (also at ${before}); ids and aliases are unique in a file`,
          field,
        );
      seen.set(id, field);
    }
  });
  return { package: parsed.data.package.name, advisories: parsed.data.advisories };
}

/** Deeper than any advisory file needs (Wolfi's go 6 levels): the parser is not asked to try. */
const MAX_NESTING = 32;
const MAX_INDENT = 256;

/**
 * SECURITY: the YAML parser spends ~2 KiB and a stack frame per nesting
 * level (100,000 `[` took 218 MiB and 1.9 s), so nesting is measured first,
 * in one pass: flow brackets outside quotes and comments, and per line the
 * indentation and the compact `- ` / `? ` indicators that open a block each.
 */
function checkNesting(text: string): void {
  let flow = 0;
  let quote: string | undefined;
  let lineStart = true;
  let indent = 0;
  let markers = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\n') {
      lineStart = true;
      indent = 0;
      markers = 0;
      continue;
    }
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = undefined;
      continue;
    }
    if (lineStart && c === ' ') {
      if (++indent > MAX_INDENT) throw invalid(`indented more than ${MAX_INDENT} columns`);
      continue;
    }
    if ((c === '-' || c === '?') && text[i + 1] === ' ' && (lineStart || text[i - 1] === ' ')) {
      if (++markers > MAX_NESTING) throw invalid(`nested more than ${MAX_NESTING} levels deep`);
      i++;
      continue;
    }
    lineStart = false;
    if (c === '#' && (i === 0 || /\s/.test(text[i - 1]!))) {
      const end = text.indexOf('\n', i);
      i = end < 0 ? text.length : end - 1;
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === '[' || c === '{') {
      if (++flow > MAX_NESTING) throw invalid(`nested more than ${MAX_NESTING} levels deep`);
    } else if (c === ']' || c === '}') {
      flow = Math.max(0, flow - 1);
    }
  }
}

/**
 * Reads a `<package>.advisories.yaml` (or its JSON form). SECURITY: bounded
 * size, few alias expansions (a billion-laughs file stops at the limit), no
 * custom tags, and the nesting the schema allows is shallow.
 */
export function parseAdvisoryYaml(text: string): AdvisoryDocument {
  if (Buffer.byteLength(text) > ADVISORY_LIMITS.documentBytes) {
    throw new AppError(
      'ADVISORY_TOO_LARGE',
      `an advisory document is at most ${ADVISORY_LIMITS.documentBytes} bytes; split the package's advisories or drop old events`,
    );
  }
  checkNesting(text);
  let json: unknown;
  try {
    const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
    const error = doc.errors[0];
    if (error) throw invalid(`not valid YAML: ${error.message.split('\n')[0]}`);
    json = doc.toJS({ maxAliasCount: 50 });
  } catch (err) {
    if (err instanceof AppError) throw err;
    if (err instanceof RangeError) throw invalid('nested too deeply');
    throw invalid(`not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  return validateAdvisoryDocument(json);
}

/**
 * The event that decides an advisory's state: the latest by timestamp; of
 * events at the same time, the one listed last (a stable sort, as wolfictl's).
 */
export function latestEvent(advisory: Advisory): AdvisoryEvent {
  let latest = advisory.events[0]!;
  let latestAt = Date.parse(latest.timestamp);
  for (const event of advisory.events.slice(1)) {
    const at = Date.parse(event.timestamp);
    if (at >= latestAt) {
      latest = event;
      latestAt = at;
    }
  }
  return latest;
}

/** The document as reef serves it (and as a Wolfi tool reads it back). */
export function toDocumentJson(doc: AdvisoryDocument): Record<string, unknown> {
  return { 'schema-version': SCHEMA_VERSION, package: { name: doc.package }, advisories: doc.advisories };
}
