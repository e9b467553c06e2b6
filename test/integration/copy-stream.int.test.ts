/**
 * copy-stream.ts on its own: the provider's CopyData frames forwarded into
 * the subscriber's COPY FROM. Rows of random sizes — empty, a few bytes (so
 * message headers straddle socket reads), hundreds of kilobytes (one row over
 * many reads) — with tabs, newlines, backslashes, non-ASCII text, NULLs and
 * bytea, checked row by row (test/harness/exact.ts); notices in the middle of
 * the stream are dropped, not loaded; an error on either side fails the copy
 * and leaves both sessions usable after a rollback. forwardCopies: several
 * tables' COPYs in one statement each way (a copy batch's chunk), every
 * table's counts checked, a failure naming its table. Replay a failure with
 * PGCONVEY_SEED=<seed>.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forwardCopies, forwardCopy, ForwardCopiesError, type CopyItem } from '../../src/engine/copy-stream.js';
import { freshDatabase } from '../harness/databases.js';
import { compareTable, equalDiff } from '../harness/exact.js';
import { createRng, testSeed } from '../harness/random.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const SEED = testSeed();
const TABLE = 'CREATE TABLE public.r (id int PRIMARY KEY, v text, b bytea, n numeric)';

describe(`copy stream: frames forwarded from provider to subscriber (seed ${SEED})`, () => {
  let source: pg.Client;
  let target: pg.Client;
  let rows = 0;
  let sourceDb: Awaited<ReturnType<typeof freshDatabase>>;

  beforeAll(async () => {
    console.log(`[copy-stream] seed ${SEED} (replay with PGCONVEY_SEED=${SEED})`);
    const rng = createRng(SEED);
    const [s, t] = await Promise.all([freshDatabase(sourceServer(), 'cs'), freshDatabase(targetServer(), 'cs')]);
    sourceDb = s;
    source = await s.connect();
    target = await t.connect();
    await source.query(TABLE);
    await target.query(TABLE);
    await target.query('ALTER TABLE public.r ADD CONSTRAINT r_small CHECK (id < 1000000)');
    const values: unknown[][] = [];
    const pieces = ['a', '\t', '\n', '\\', '\\N', 'ä', '€', '"', "'", ' ', '\r', 'x'.repeat(100)];
    for (let id = 1; id <= 3000; id++) {
      const kind = rng.int(0, 20);
      const len = kind === 0 ? rng.int(100_000, 400_000) : kind < 4 ? 0 : rng.int(1, 40);
      let v = '';
      while (v.length < len) v += pieces[rng.int(0, pieces.length - 1)];
      const bytes = Buffer.from(Array.from({ length: rng.int(0, 30) }, () => rng.int(0, 255)));
      values.push([id, kind === 1 ? null : v, kind === 2 ? null : bytes, kind === 3 ? null : `${rng.int(-1e6, 1e6)}.${rng.int(0, 9999)}`]);
    }
    for (let i = 0; i < values.length; i += 200) {
      const chunk = values.slice(i, i + 200);
      await source.query(`INSERT INTO public.r VALUES ${chunk.map((_, j) => `($${4 * j + 1}, $${4 * j + 2}, $${4 * j + 3}, $${4 * j + 4})`).join(', ')}`, chunk.flat());
    }
    rows = values.length;
    // A function that raises a notice every 500 rows: NoticeResponse messages inside the COPY out stream.
    await source.query(`CREATE FUNCTION public.noisy(i int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN IF i % 500 = 0 THEN RAISE NOTICE 'row %', i; END IF; RETURN i; END $$`);
  });
  afterAll(async () => {
    await Promise.all([source?.end(), target?.end()]);
  });

  it('copies every row exactly, with the counts of both sides', async () => {
    const tally = { rows: 0, bytes: 0 };
    await target.query('BEGIN');
    await forwardCopy(source, target, 'COPY (SELECT id, v, b, n FROM public.r) TO STDOUT', 'COPY public.r (id, v, b, n) FROM STDIN', tally);
    await target.query('COMMIT');
    expect(tally.rows).toBe(rows);
    expect(tally.bytes).toBeGreaterThan(rows);
    const d = await compareTable(source, target, 'public', 'r');
    expect(d).toEqual(equalDiff(d));
    // Both sessions are usable afterwards.
    expect((await source.query('SELECT 1 AS x')).rows[0].x).toBe(1);
    expect((await target.query('SELECT 1 AS x')).rows[0].x).toBe(1);
  });

  it('drops notices sent in the middle of the stream', async () => {
    await target.query('TRUNCATE public.r');
    const tally = { rows: 0, bytes: 0 };
    await target.query('BEGIN');
    await forwardCopy(source, target, 'COPY (SELECT public.noisy(id), v, b, n FROM public.r) TO STDOUT', 'COPY public.r (id, v, b, n) FROM STDIN', tally);
    await target.query('COMMIT');
    expect(tally.rows).toBe(rows);
    const d = await compareTable(source, target, 'public', 'r');
    expect(d).toEqual(equalDiff(d));
  });

  it("a provider error mid-stream fails the copy and cancels the subscriber's COPY", async () => {
    await target.query('TRUNCATE public.r');
    await target.query('BEGIN');
    const failed = forwardCopy(source, target, 'COPY (SELECT id, v, b, n FROM public.r ORDER BY id) TO STDOUT WHERE false', 'COPY public.r (id, v, b, n) FROM STDIN', { rows: 0, bytes: 0 }).catch((e: Error) => e);
    // (a syntax error: refused before any row)
    expect(String(await failed)).toMatch(/syntax error/);
    await target.query('ROLLBACK');
    await target.query('BEGIN');
    const err = await forwardCopy(source, target, 'COPY (SELECT CASE WHEN id = 2500 THEN 1 / (id - 2500) ELSE id END, v, b, n FROM public.r ORDER BY id) TO STDOUT', 'COPY public.r (id, v, b, n) FROM STDIN', { rows: 0, bytes: 0 }).catch((e: Error) => e);
    expect(String(err)).toMatch(/division by zero/);
    await target.query('ROLLBACK');
    expect((await target.query<{ n: number }>('SELECT count(*)::int AS n FROM public.r')).rows[0]!.n).toBe(0);
    expect((await source.query('SELECT 1 AS x')).rows[0].x).toBe(1);
  });

  it('a subscriber error mid-stream fails the copy', async () => {
    await target.query('ROLLBACK').catch(() => undefined); // (whatever an earlier test left open)
    // A provider session of its own: it is left mid-COPY (paused), and closed as the copier closes it.
    const reader = await sourceDb.connect();
    await target.query('BEGIN');
    const err = await forwardCopy(reader, target, 'COPY (SELECT CASE WHEN id = 2000 THEN 1000000 ELSE id END, v, b, n FROM public.r ORDER BY id) TO STDOUT', 'COPY public.r (id, v, b, n) FROM STDIN', {
      rows: 0,
      bytes: 0,
    }).catch((e: Error) => e);
    expect(String(err)).toMatch(/r_small/);
    await target.query('ROLLBACK');
    expect((await target.query<{ n: number }>('SELECT count(*)::int AS n FROM public.r')).rows[0]!.n).toBe(0);
    (reader as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    await reader.end().catch(() => undefined);
  });

  const item = (where: string, select = 'id, v, b, n'): CopyItem => ({
    copyOut: `COPY (SELECT ${select} FROM public.r WHERE ${where} ORDER BY id) TO STDOUT`,
    copyIn: 'COPY public.r (id, v, b, n) FROM STDIN',
    tally: { rows: 0, bytes: 0 },
  });

  it('forwardCopies: several tables in one round trip each way, every count per table', async () => {
    await target.query('ROLLBACK').catch(() => undefined);
    await target.query('TRUNCATE public.r');
    // An empty one first, one in the middle, and at the end (CopyDone and CommandComplete straddle reads).
    const items = [item('false'), item('id <= 1000', 'public.noisy(id), v, b, n'), item('false'), item('id > 1000 AND id <= 1001'), item('id > 1001'), item('false')];
    await target.query('BEGIN');
    await forwardCopies(source, target, items);
    await target.query('COMMIT');
    expect(items.map((i) => i.tally.rows)).toEqual([0, 1000, 0, 1, rows - 1001, 0]);
    const d = await compareTable(source, target, 'public', 'r');
    expect(d).toEqual(equalDiff(d));
    expect((await source.query('SELECT 1 AS x')).rows[0].x).toBe(1);
    expect((await target.query('SELECT 1 AS x')).rows[0].x).toBe(1);
  });

  it("forwardCopies: a provider error names its table, cancels the subscriber's COPY, and loads nothing", async () => {
    await target.query('TRUNCATE public.r');
    for (const [items, at, message] of [
      [[item('id <= 1000'), item('id > 1000', 'CASE WHEN id = 2500 THEN 1 / (id - 2500) ELSE id END, v, b, n'), item('false')], 1, /division by zero/],
      [[item('id <= 10'), { ...item('true'), copyOut: 'COPY (SELECT * FROM public.no_such_table) TO STDOUT' }, item('id > 10')], 1, /no_such_table/],
    ] as const) {
      await target.query('BEGIN');
      const err = await forwardCopies(source, target, items as unknown as CopyItem[]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ForwardCopiesError);
      expect((err as ForwardCopiesError).index).toBe(at);
      expect(String(err)).toMatch(message);
      await target.query('ROLLBACK');
      expect((await target.query<{ n: number }>('SELECT count(*)::int AS n FROM public.r')).rows[0]!.n).toBe(0);
      expect((await source.query('SELECT 1 AS x')).rows[0].x).toBe(1);
    }
  });

  it('forwardCopies: a subscriber error names its table', async () => {
    const reader = await sourceDb.connect();
    await target.query('BEGIN');
    const items = [item('id <= 100'), item('id > 100 AND id <= 200'), item('id > 200', 'CASE WHEN id = 2000 THEN 1000000 ELSE id END, v, b, n'), item('false')];
    const err = await forwardCopies(reader, target, items).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ForwardCopiesError);
    expect((err as ForwardCopiesError).index).toBe(2);
    expect(String(err)).toMatch(/r_small/);
    await target.query('ROLLBACK');
    expect((await target.query<{ n: number }>('SELECT count(*)::int AS n FROM public.r')).rows[0]!.n).toBe(0);
    (reader as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    await reader.end().catch(() => undefined);
  });
});
