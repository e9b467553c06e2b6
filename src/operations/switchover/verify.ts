/**
 * Step 5, `verify`: every table has as many rows on both sides (one
 * snapshot per side); if not, stop with the fences in place. `--verify
 * none` skips it.
 */
import type pg from 'pg';
import { sqlFormat, type QualifiedName } from '../../kernel/index.js';
import { SwitchoverError } from './error.js';
import type { SwitchoverRun } from './run.js';

export async function verifyCounts(run: SwitchoverRun, provider: pg.Client, subscriber: pg.Client, tables: readonly QualifiedName[]): Promise<void> {
  await run.step('verify', async () => {
    if (run.options.verify === 'none') return { value: null, detail: 'skipped (--verify none)' };
    const [a, b] = await Promise.all([countRows(provider, tables), countRows(subscriber, tables)]);
    run.report.tables = tables.map((t, i) => ({ table: `${t.schema}.${t.name}`, from: a[i]!, to: b[i]! }));
    const differ = run.report.tables.filter((t) => t.from !== t.to);
    if (differ.length) {
      throw new SwitchoverError(
        'switchover_counts_differ',
        `row counts differ: ${differ.map((t) => `${t.table} ${t.from} vs ${t.to}`).join(', ')}; both nodes stay fenced`,
        `find the cause (rows written on the subscriber before the switchover?), then: ${run.fencedHint()}`,
      );
    }
    return { value: null, detail: `${tables.length} tables, ${a.reduce((s, n) => s + n, 0)} rows, counts equal` };
  });
}

/**
 * Row counts of the tables, in one statement (one snapshot): an ordinary
 * table's own rows (ONLY: an inheritance parent's children are tables of
 * their own), a partitioned table's rows in all its partitions.
 */
export async function countRows(client: pg.Client, tables: readonly QualifiedName[]): Promise<number[]> {
  if (!tables.length) return [];
  const partitioned = new Set(
    (
      await client.query<{ i: number }>(
        `SELECT t.i FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(s, n, i)
           JOIN pg_catalog.pg_namespace ns ON ns.nspname = t.s JOIN pg_catalog.pg_class c ON c.relnamespace = ns.oid AND c.relname = t.n
          WHERE c.relkind = 'p'`,
        [tables.map((t) => t.schema), tables.map((t) => t.name)],
      )
    ).rows.map((r) => Number(r.i) - 1),
  );
  const sql = tables.map((t, i) => sqlFormat(`SELECT %s AS i, count(*) AS n FROM ${partitioned.has(i) ? '' : 'ONLY '}%I.%I`, i, t.schema, t.name)).join(' UNION ALL ');
  const { rows } = await client.query<{ i: number; n: string }>(sql);
  const counts = new Array<number>(tables.length).fill(0);
  for (const r of rows) counts[r.i] = Number(r.n);
  return counts;
}
