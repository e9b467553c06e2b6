/**
 * Independent check of replication results: reads a table on both sides,
 * row by row, as text, ordered by the given key, with no pgconvey code
 * involved, and reports the differences.
 */
import format from 'pg-format';
import type pg from 'pg';

export interface TableDiff {
  table: string;
  providerRows: number;
  subscriberRows: number;
  missing: string[];
  extra: string[];
}

async function rowsOf(client: pg.Client, qualified: string, orderBy: string[], floatDigits: number): Promise<string[]> {
  await client.query(`SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; SET extra_float_digits = ${floatDigits}; SET TimeZone = 'UTC'`);
  const order = orderBy.map((c) => format('%I', c)).join(', ');
  const { rows } = await client.query<{ r: string }>(`SELECT t::text AS r FROM ${qualified} t ORDER BY ${order}`);
  return rows.map((x) => x.r);
}

/** Compares one table; `qualified` is already quoted (e.g. format('%I.%I', s, t)). */
export async function diffTable(provider: pg.Client, subscriber: pg.Client, qualified: string, orderBy: string[]): Promise<TableDiff> {
  // From PostgreSQL 12 floats print shortest-exact (extra_float_digits > 0); before, with up to 17 digits.
  // When one side is older, both print the classic 15 digits (extra_float_digits = 0), the same on every version.
  const versions = await Promise.all([provider, subscriber].map(async (c) => Number((await c.query("SELECT current_setting('server_version_num') AS v")).rows[0].v)));
  const floatDigits = Math.min(...versions) >= 120000 ? 3 : 0;
  const [a, b] = await Promise.all([rowsOf(provider, qualified, orderBy, floatDigits), rowsOf(subscriber, qualified, orderBy, floatDigits)]);
  const count = (xs: string[]) => xs.reduce((m, x) => m.set(x, (m.get(x) ?? 0) + 1), new Map<string, number>());
  const ca = count(a);
  const cb = count(b);
  const missing: string[] = [];
  const extra: string[] = [];
  for (const [row, n] of ca) for (let i = cb.get(row) ?? 0; i < n; i++) missing.push(row);
  for (const [row, n] of cb) for (let i = ca.get(row) ?? 0; i < n; i++) extra.push(row);
  return { table: qualified, providerRows: a.length, subscriberRows: b.length, missing: missing.slice(0, 10), extra: extra.slice(0, 10) };
}

/** Waits until `check` returns true, polling every `everyMs`; fails with `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
