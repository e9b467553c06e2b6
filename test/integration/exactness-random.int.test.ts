/**
 * Randomized exactness: for a few fixed seeds, random tables (every type
 * family, composite and collated keys, partial / expression unique indexes,
 * identity and generated columns …) written by several concurrent writers,
 * each transaction with its own TimeZone, DateStyle, IntervalStyle,
 * bytea_output and extra_float_digits, while the initial copy runs and the
 * worker steps and restarts; afterwards every table must equal the provider
 * row by row (test/harness/exactness). A failing seed prints its minimal
 * reproduction.
 *
 * EXACTNESS_SEED=<n> replays one seed; EXACTNESS_SEEDS=<a,b,…> sets the list;
 * EXACTNESS_EXCLUDE=known (or a list of feature tags) leaves out what today's
 * engine is known to get wrong; EXACTNESS_SHRINK_MS bounds the shrinking.
 * Long runs: npm run soak -- --minutes N --seed S.
 */
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { pipeline } from 'node:stream/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkSeed, compareTable, describeComparison, detectEnvironment, generateScenario, parseExcluded } from '../harness/exactness/index.js';
import { qi } from '../harness/exactness/comparer.js';
import { preludeFor } from '../harness/exactness/schema.js';
import type { Environment } from '../harness/exactness/types.js';
import { settingsSql } from '../harness/exactness/workload.js';
import { freshDatabase } from '../harness/databases.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const SEEDS = process.env.EXACTNESS_SEED ? [Number(process.env.EXACTNESS_SEED)] : (process.env.EXACTNESS_SEEDS ?? '101,202,303').split(',').map(Number);
const EXCLUDED = parseExcluded(process.env.EXACTNESS_EXCLUDE);
const SHRINK_MS = Number(process.env.EXACTNESS_SHRINK_MS ?? 15_000);

describe(`randomized exactness (seeds ${SEEDS.join(', ')}${EXCLUDED.size ? `; excluded: ${[...EXCLUDED].join(', ')}` : ''})`, () => {
  let env: Environment;
  let shrunkOne = false;

  beforeAll(async () => {
    env = await detectEnvironment(sourceServer(), targetServer());
    console.log(`[exactness] PG ${env.sourceMajor} -> ${env.targetMajor}; seeds ${SEEDS.join(', ')}; collations ${env.collations.join(', ')}; extensions ${env.extensions.join(', ')}`);
  });

  it('the comparer finds equal data equal (a COPY clone) and a changed value, a -0 or a missing row different', async () => {
    const a = await freshDatabase(sourceServer(), 'exc_a');
    const b = await freshDatabase(targetServer(), 'exc_b');
    const ca = await a.connect();
    const cb = await b.connect();
    try {
      const s = generateScenario(SEEDS[0]!, env, { excluded: new Set(), transactions: 40 });
      const ddl = [...preludeFor(s.tables), ...s.tables.flatMap((t) => t.ddl)];
      for (const c of [ca, cb]) for (const stmt of ddl) await c.query(stmt);
      // The workload's committed transactions, one after another, on one connection.
      let rows = 0;
      for (const txn of s.txns) {
        if (txn.end !== 'commit' || txn.truncated) continue; // keep the rows to compare
        await ca.query(`${settingsSql(txn.settings)}; BEGIN`);
        try {
          for (const it of txn.items) if (it) await ca.query(it.sql);
          await ca.query('COMMIT');
          rows++;
        } catch {
          await ca.query('ROLLBACK');
        }
      }
      expect(rows).toBeGreaterThan(10);
      // Clone every table by COPY text under pinned settings (exact by definition).
      const pinned = "SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET TimeZone = 'UTC'; SET extra_float_digits = 3; SET bytea_output = 'hex'";
      await ca.query(pinned);
      await cb.query(pinned);
      await cb.query('SET session_replication_role = replica');
      for (const t of s.tables) {
        const q = `public.${qi(t.name)}`;
        // Every column but generated ones (COPY FROM writes identity columns as given).
        const cols = (await ca.query<{ n: string }>("SELECT attname AS n FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND coalesce(pg_catalog.to_jsonb(pg_attribute)->>'attgenerated', '') = '' ORDER BY attnum", [q])).rows.map((r) => qi(r.n)).join(', ');
        await pipeline(ca.query(copyTo(`COPY (SELECT ${cols} FROM ONLY ${q}) TO STDOUT`)), cb.query(copyFrom(`COPY ${q} (${cols}) FROM STDIN`)));
      }
      let compared = 0;
      for (const t of s.tables) {
        const c = await compareTable(ca, cb, t.name, t.key);
        expect(c.differing, describeComparison(c)).toBe(0);
        compared += c.providerRows;
      }
      expect(compared).toBeGreaterThan(10);
      // One row gone from a clone is found, by its key.
      const victim = s.tables.find((t) => t.parent === undefined)!;
      const gone = await cb.query(`DELETE FROM ONLY public.${qi(victim.name)} WHERE ctid = (SELECT min(ctid) FROM ONLY public.${qi(victim.name)}) RETURNING 1`);
      if (gone.rowCount) {
        const c = await compareTable(ca, cb, victim.name, victim.key);
        expect(c.differing).toBe(1);
        expect(c.diffs[0]!.subscriber).toBeNull();
      }
      // Floats by their bits: -0 is not 0, NaN equals NaN; text by its exact output.
      for (const c of [ca, cb]) await c.query('CREATE TABLE public.fl (k int PRIMARY KEY, x double precision, y real, j json)');
      await ca.query(`INSERT INTO public.fl VALUES (1, '-0', '-0', '{"a": 1}'), (2, 'NaN', 'NaN', 'null'), (3, 0.1, 0.1, '{"a":1}')`);
      await cb.query(`INSERT INTO public.fl VALUES (1, '0', '-0', '{"a": 1}'), (2, 'NaN', 'NaN', NULL), (3, 0.1, 0.1, '{"a": 1}')`);
      const f = await compareTable(ca, cb, 'fl', ['k']);
      expect(f.diffs.map((d) => d.key)).toEqual(['["1"]', '["2"]', '["3"]']);
      expect(describeComparison(f)).toContain('x: provider "8000000000000000" ≠ subscriber "0000000000000000"');
    } finally {
      await ca.end();
      await cb.end();
    }
  });

  for (const seed of SEEDS) {
    it(`seed ${seed}: every table equals the provider, row by row`, { timeout: 180_000 }, async () => {
      const shrinkMs = shrunkOne ? 0 : SHRINK_MS;
      const out = await checkSeed(seed, sourceServer(), targetServer(), env, { excluded: EXCLUDED, shrinkMs, log: (l) => console.log(l) });
      if (out.result.failure) shrunkOne = true;
      console.log(`[exactness] seed ${seed}: ${out.result.committed} transactions committed, ${out.result.rolledBack} rolled back, ${out.result.rowsCompared} rows compared, ${out.result.durationMs} ms`);
      if (out.report) console.log(out.report);
      expect(out.result.statementErrors, `seed ${seed}: workload statements failed (generator bug)\n${out.report}`).toEqual([]);
      expect(out.result.failure, out.report).toBeNull();
      expect(out.result.committed, `seed ${seed}`).toBeGreaterThan(20);
    });
  }
});
