import type { HistoryBucket } from '@chit/sdk';
import { HubError } from '../errors/hub-error';

// The pure rules of history answers: which ranges are served, the buckets of a range (those the books
// hold nothing for answer zero), and CSV.

/** The most buckets one answer holds: a year of days, or a month of hours. */
export const MAX_BUCKETS = { hour: 31 * 24, day: 3_660 } as const satisfies Record<HistoryBucket, number>;

const MS = { hour: 3_600_000, day: 86_400_000 } as const;

/** A range to answer: `from` inclusive, `to` exclusive. */
export interface Range {
  from: Date;
  to: Date;
}

/**
 * Checks a bucketed range: `to` after `from`, and at most {@link MAX_BUCKETS} buckets; else MALFORMED
 * naming the field.
 */
export function requireRange(range: Range, bucket?: HistoryBucket): void {
  if (range.to.getTime() <= range.from.getTime()) {
    throw new HubError('MALFORMED', 'to: must be after from', { path: 'to' });
  }
  const width = bucket ?? 'day';
  const buckets = Math.ceil((range.to.getTime() - floor(range.from, width).getTime()) / MS[width]);
  if (buckets > MAX_BUCKETS[width]) {
    throw new HubError(
      'MALFORMED',
      `to: at most ${MAX_BUCKETS[width]} ${width}s in one answer (this range has ${buckets}); ask for a shorter range or bucket=day`,
      { path: 'to', max: MAX_BUCKETS[width], buckets },
    );
  }
}

/** The start of the hour or UTC day `at` falls in. */
export function floor(at: Date, bucket: HistoryBucket): Date {
  return new Date(Math.floor(at.getTime() / MS[bucket]) * MS[bucket]);
}

/**
 * Every bucket that starts in the range (the first one holds `from`), in order, with the figures the
 * books hold for it or zero: a plot's x axis without holes.
 */
export function fillBuckets<T extends { start: Date }>(
  range: Range,
  bucket: HistoryBucket,
  rows: readonly T[],
  zero: (start: Date) => T,
): T[] {
  const byStart = new Map(rows.map((row) => [row.start.getTime(), row]));
  const buckets: T[] = [];
  for (let at = floor(range.from, bucket).getTime(); at < range.to.getTime(); at += MS[bucket]) {
    buckets.push(byStart.get(at) ?? zero(new Date(at)));
  }
  return buckets;
}

/** Rows as CSV (RFC 4180): a header of `columns`, then one line per row; CRLF line ends. */
export function toCsv<R extends Record<string, unknown>>(columns: readonly (keyof R & string)[], rows: readonly R[]) {
  const cell = (value: unknown) => {
    const text =
      value === null || value === undefined ? '' : value instanceof Date ? value.toISOString() : String(value);
    return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  return [columns.join(','), ...rows.map((row) => columns.map((column) => cell(row[column])).join(','))]
    .map((line) => `${line}\r\n`)
    .join('');
}
