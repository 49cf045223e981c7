import type { z } from 'zod';
import { AppError } from '../errors.ts';

/** Query string through a zod schema; a bad parameter is a 400 naming it. */
export function parseQuery<T extends z.ZodType>(schema: T, query: unknown): z.infer<T> {
  const parsed = schema.safeParse(query);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new AppError('BAD_REQUEST', `query parameter ${String(issue.path[0])}: ${issue.message}`);
  }
  return parsed.data;
}

/** A JSON body through a zod schema; a bad field is a 400 naming it. */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  const parsed = schema.safeParse(body ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new AppError('BAD_REQUEST', `field ${issue.path.join('.') || '(body)'}: ${issue.message}`);
  }
  return parsed.data;
}

/** Opaque to clients: they pass `next` back as `after`. */
export function encodeCursor(key: unknown): string {
  return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
}

export function decodeCursor<T extends z.ZodType>(schema: T, text: string): z.infer<T> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    value = undefined;
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new AppError(
      'BAD_REQUEST',
      'query parameter after: not a cursor; pass the `next` of the previous page',
    );
  }
  return parsed.data;
}
