/**
 * A schema change made directly on the provider, bypassing `pgconvey
 * execute` (#17 part 3): an ADD COLUMN on old only, met while the table is
 * still merging its initial copy, where holding the table alone is not done
 * (an `ok` table is held alone: ddl-table-stop.int.test.ts). The whole queue's
 * worker stops at the first batch holding a row of the new shape, with an
 * error naming the table, the column, the batch and the exact ALTER TABLE to
 * run on the subscriber; nothing of that batch is applied, and retries fail
 * the same way. Once the DBA runs that statement on new, the same batch
 * applies and both sides are equal row by row (test/harness/exact.ts).
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as engine from '../../src/engine/index.js';
import { makePair, type Pair } from '../harness/exact.js';

describe('a direct ALTER on the provider', () => {
  const pairs: Pair[] = [];
  afterAll(async () => {
    for (const p of pairs) await p.close();
  });

  it('ADD COLUMN on old only, tables merging their copy: the worker names table, column and the ALTER to run; after it on new, everything converges', { timeout: 120_000 }, async () => {
    const pair = await makePair('ddld', {
      copy: true,
      schema: 'CREATE TABLE public."Orders" (id integer PRIMARY KEY, a integer); CREATE TABLE public.other (id integer PRIMARY KEY, v text);',
      tables: [
        { schema: 'public', table: 'Orders' },
        { schema: 'public', table: 'other' },
      ],
    });
    pairs.push(pair);
    await pair.prov.query('INSERT INTO "Orders" SELECT g, g FROM generate_series(1, 50) g; INSERT INTO other SELECT g, g::text FROM generate_series(1, 50) g');
    // Both tables copied; no batch merged them yet (catching-up with their copy's snapshot).
    for (const table of ['Orders', 'other']) await engine.copyTable(() => pair.pdb.connect(), () => pair.sdb.connect(), { queue: 'q', consumer: 's', schema: 'public', table });
    await pair.prov.query('ALTER TABLE "Orders" ADD COLUMN "Total" numeric(10,2) NOT NULL DEFAULT 0');
    await pair.prov.query('UPDATE other SET v = v || \'!\' WHERE id < 10'); // before the new shape, in the same batch
    await pair.prov.query('INSERT INTO "Orders" (id, a, "Total") VALUES (51, 51, 12.5); UPDATE "Orders" SET a = -a WHERE id < 5');
    await engine.forceTick(pair.prov, 'q');
    const err = await pair.worker.step().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(engine.SchemaMismatchError);
    const e = err as engine.SchemaMismatchError;
    expect(e.code).toBe('subscriber_schema_mismatch');
    expect(e.message).toMatch(/^table "public"\."Orders" on the subscriber lacks the column\(s\) Total that the provider's rows carry .*replication of queue "q" waits at the batch of ticks \d+ to \d+, nothing is skipped; to go on, run on the subscriber: ALTER TABLE "public"\."Orders" ADD COLUMN "Total" numeric\(10,2\) DEFAULT 0 NOT NULL;$/);
    expect(e.alter).toEqual(['ALTER TABLE "public"."Orders" ADD COLUMN "Total" numeric(10,2) DEFAULT 0 NOT NULL;']);
    expect(e.hint).toContain('run on the subscriber: ALTER TABLE "public"."Orders" ADD COLUMN "Total" numeric(10,2) DEFAULT 0 NOT NULL;');
    // Nothing of the batch went in: not the other table's rows before the new shape either.
    expect((await pair.sub.query("SELECT count(*)::int AS n FROM other WHERE v LIKE '%!'")).rows[0].n).toBe(0);
    // The DBA mirrors it on new; the worker's next try applies the same batch whole.
    for (const sql of e.alter) await pair.sub.query(sql);
    await pair.syncUntilOk();
    await pair.expectEqual('public', 'Orders');
    await pair.expectEqual('public', 'other');
  });
});
