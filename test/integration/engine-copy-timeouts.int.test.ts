/**
 * Production server settings and the initial copy: with statement_timeout
 * and idle_in_transaction_session_timeout set as database defaults on both
 * sides (lowered to 500 ms and 1 s so that a table of 1.5 million narrow rows
 * outlasts them — the field saw 30 s against 12M rows), the copy completes and merges through the daemons as `pgconvey run` starts
 * them. A copy that fails is logged, counted, shown on its table (back to
 * `pending` with the error) and retried with backoff until it succeeds.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDsn } from '../../src/config/index.js';
import { createLogger, runTickerDaemon, runWorkerDaemon } from '../../src/daemons/index.js';
import * as engine from '../../src/engine/index.js';
import { waitFor } from '../harness/compare.js';
import { freshDatabase, type TestDatabase } from '../harness/databases.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const ROWS = 1_500_000;

describe('the initial copy under the server timeouts of a production database', () => {
  let pdb: TestDatabase;
  let sdb: TestDatabase;
  let prov: pg.Client;
  let sub: pg.Client;
  const stop = new AbortController();
  const daemons: Array<Promise<void>> = [];
  const lines: string[] = [];
  const failures: string[] = [];

  beforeAll(async () => {
    pdb = await freshDatabase(sourceServer(), 'tmo_p');
    sdb = await freshDatabase(targetServer(), 'tmo_s');
    prov = await pdb.connect();
    sub = await sdb.connect();
    const ddl = 'CREATE TABLE public.big (id int PRIMARY KEY, v int NOT NULL); CREATE INDEX big_v ON public.big (v); CREATE TABLE public.small (id int PRIMARY KEY, v text NOT NULL)';
    await prov.query(ddl);
    await sub.query(ddl.replace('v text NOT NULL)', 'w text)')); // small lacks column v on the subscriber: its copy fails
    await prov.query(`INSERT INTO public.big SELECT g, g % 1000 FROM generate_series(1, ${ROWS}) g; INSERT INTO public.small SELECT g, 'v' || g FROM generate_series(1, 100) g; ANALYZE public.big`);
    for (const c of [prov, sub]) await engine.installEngine(c);
    await engine.createQueue(prov, 'q', { tickerMaxLagMs: 50 });
    await engine.addTable(prov, 'q', 'public', 'big');
    await engine.subscribe(prov, sub, 'q', 'new');
    await engine.addSubscriberTable(sub, 'q', 'new', 'public', 'big', 'pending');
    for (const db of [pdb, sdb]) {
      await db.query(`ALTER DATABASE ${db.name} SET statement_timeout = '500ms'`);
      await db.query(`ALTER DATABASE ${db.name} SET idle_in_transaction_session_timeout = '1s'`);
    }
  });

  afterAll(async () => {
    stop.abort();
    await Promise.all(daemons);
    await prov?.end();
    await sub?.end();
  });

  const row = async (table: string) =>
    (await sub.query('SELECT state, last_error, copy_failures, rows_expected FROM pgconvey.subscriber_table WHERE table_name = $1', [table])).rows[0] as {
      state: string;
      last_error: string | null;
      copy_failures: number;
      rows_expected: string | null;
    };
  const count = async (c: pg.Client, sql: string) => Number((await c.query(sql)).rows[0].n);

  it('copies and merges 1.5M rows although the copy outlasts both timeouts', { timeout: 200_000 }, async () => {
    // The settings are in force for new sessions.
    const probe = await sdb.connect();
    expect((await probe.query('SHOW statement_timeout')).rows[0].statement_timeout).toBe('500ms');
    await probe.end();

    const log = createLogger({ level: 'info', format: 'json', write: (l) => lines.push(l) });
    daemons.push(runTickerDaemon({ provider: parseDsn(pdb.dsn), queue: 'q', log, signal: stop.signal }));
    daemons.push(
      runWorkerDaemon({
        provider: parseDsn(pdb.dsn),
        subscriber: parseDsn(sdb.dsn),
        queue: 'q',
        consumer: 'new',
        log,
        signal: stop.signal,
        retryDelayMs: 200,
        events: { copyFailed: (_q, _n, table) => failures.push(table) },
      }),
    );
    // The big copy shows progress with its expected size while it runs, then finishes despite the timeouts.
    await prov.query('UPDATE public.big SET v = -1 WHERE id % 100000 = 0');
    await waitFor('big to be ok', async () => (await row('big')).state === 'ok', 120_000, 250).catch((err) => {
      throw new Error(`${(err as Error).message}: ${JSON.stringify(lines.slice(-10))}`);
    });
    expect((await row('big')).last_error).toBeNull();
    expect(Number((await row('big')).rows_expected)).toBeGreaterThan(ROWS * 0.9);
    // The copy took longer than the statement timeout would have allowed.
    const copied = lines.map((l) => JSON.parse(l) as { msg: string; ms?: number }).find((l) => l.msg === 'copied table');
    expect(copied?.ms).toBeGreaterThan(1000);
    const digest = "SELECT count(*) AS n, sum(id::bigint * 7 + v) AS s FROM public.big";
    await waitFor('the updates to be applied', async () => (await count(sub, "SELECT count(*) AS n FROM public.big WHERE v = -1")) === 15, 30_000);
    expect((await sub.query(digest)).rows[0]).toEqual((await prov.query(digest)).rows[0]);
    expect(await count(sub, "SELECT count(*) AS n FROM pg_indexes WHERE indexname = 'big_v'")).toBe(1);

  });

  it('a failed copy is logged, counted, shown on its table and retried with backoff until it succeeds', { timeout: 120_000 }, async () => {
    await engine.addTable(prov, 'q', 'public', 'small');
    await engine.addSubscriberTable(sub, 'q', 'new', 'public', 'small', 'pending');
    // The failing copy: logged, counted, back to pending with its error. The table's row is written before the
    // copy's connections close and the failure reaches the event and the log, so wait for all three (the
    // CI run that read the row and then the event at once saw the event not yet counted).
    const logged = () => lines.some((l) => l.includes('"copy failed; it is retried with backoff"') && l.includes('public.small'));
    await waitFor('the copy of small to fail visibly', async () => (await row('small')).copy_failures >= 1 && failures.includes('public.small') && logged(), 60_000);
    const failed = await row('small');
    expect(failed.state).toBe('pending');
    expect(failed.last_error).toMatch(/column "v"/);

    // Fix the subscriber table: the next retry (after its backoff) copies it.
    await sub.query('ALTER TABLE public.small ADD COLUMN v text');
    await waitFor('small to be copied on a retry', async () => (await row('small')).state === 'ok', 60_000, 250);
    expect(await row('small')).toMatchObject({ last_error: null, copy_failures: 0 });
    expect(await count(sub, 'SELECT count(*) AS n FROM public.small WHERE v IS NOT NULL')).toBe(100);
  });
});
