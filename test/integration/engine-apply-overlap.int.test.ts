/**
 * The apply's overlap (a chunk's statements run on the subscriber while the
 * next chunk is decoded), checked row by row with no pgconvey code
 * (test/harness/exact.ts): a batch whose first chunk's flush fails on the
 * subscriber, and one whose second chunk is refused while the first chunk's
 * statements (two tables: several statements) are still in flight, leave
 * nothing of the batch on the subscriber and the position where it was —
 * no statement of the batch runs after its ROLLBACK — and once the cause is
 * fixed the same batch applies exactly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as engine from '../../src/engine/index.js';
import { makePair, type Pair } from '../harness/exact.js';

const SCHEMA = `
  CREATE TABLE public.a (id int PRIMARY KEY, v text);
  CREATE TABLE public.b (id int PRIMARY KEY, v text);
`;

describe('apply overlap: a failing batch leaves nothing behind', () => {
  let pair: Pair;

  beforeAll(async () => {
    pair = await makePair('overlap', { schema: SCHEMA, tables: [{ schema: 'public', table: 'a' }, { schema: 'public', table: 'b' }] });
  });

  afterAll(async () => {
    await pair?.close();
  });

  const position = async () => (await pair.sub.query<{ t: string | null }>("SELECT completed_tick::text AS t FROM pgconvey.subscription WHERE consumer_name = 's'")).rows[0]!.t;
  const count = async (table: string) => Number((await pair.sub.query(`SELECT count(*) AS n FROM public.${table}`)).rows[0].n);

  it('a chunk whose statements fail while the next chunk is decoded: nothing applied, then all of it exactly', { timeout: 120_000 }, async () => {
    await pair.sub.query("ALTER TABLE public.a ADD CONSTRAINT not_bad CHECK (v <> 'bad')");
    await pair.prov.query('BEGIN');
    for (let i = 1; i <= 2000; i++) {
      await pair.prov.query('INSERT INTO public.a VALUES ($1, $2)', [i, i === 120 ? 'bad' : `a${i}`]);
      await pair.prov.query('INSERT INTO public.b VALUES ($1, $2)', [i, `b${i}`]);
    }
    await pair.prov.query('COMMIT');
    const before = await position();
    await engine.forceTick(pair.prov, 'q');
    await expect(pair.worker.step()).rejects.toThrow(/not_bad/);
    expect(await position()).toBe(before);
    expect(await count('a')).toBe(0);
    expect(await count('b')).toBe(0);

    await pair.sub.query('ALTER TABLE public.a DROP CONSTRAINT not_bad');
    await pair.sync();
    await pair.expectEqual('public', 'a');
    await pair.expectEqual('public', 'b');
  });

  it("the next chunk refused (a column the subscriber lacks) while the first chunk's statements run: nothing of the attempt stays, the table is held, the other applied once, then exactly", { timeout: 120_000 }, async () => {
    const before = await position();
    const a0 = await count('a');
    await pair.prov.query('BEGIN');
    for (let i = 3001; i <= 3400; i++) {
      await pair.prov.query('INSERT INTO public.a VALUES ($1, $2)', [i, `a${i}`]);
      await pair.prov.query('INSERT INTO public.b VALUES ($1, $2)', [i, `b${i}`]);
    }
    await pair.prov.query('UPDATE public.a SET v = v || $1 WHERE id <= 200', ['x']);
    await pair.prov.query('DELETE FROM public.b WHERE id > 1900 AND id <= 2000');
    await pair.prov.query('ALTER TABLE public.a ADD COLUMN w int');
    for (let i = 3401; i <= 3600; i++) await pair.prov.query('INSERT INTO public.a VALUES ($1, $2, $1)', [i, `a${i}`]);
    await pair.prov.query('COMMIT');
    await engine.forceTick(pair.prov, 'q');
    // The attempt is rolled back with its statements in flight; `a` is held (#17 part 3) and the batch taken again without it.
    const r = await pair.worker.step();
    expect(r.kind).toBe('applied');
    expect(r.kind === 'applied' && r.holds?.map((h) => [h.table, h.columns])).toEqual([['"public"."a"', ['w']]]);
    expect(await position()).not.toBe(before);
    expect(await count('a')).toBe(a0);
    expect((await pair.sub.query("SELECT state FROM pgconvey.subscriber_table WHERE table_name = 'a'")).rows[0].state).toBe('held');
    await pair.expectEqual('public', 'b');

    await pair.sub.query('ALTER TABLE public.a ADD COLUMN w int');
    await pair.sync();
    await pair.expectEqual('public', 'a');
    await pair.expectEqual('public', 'b');
  });
});
