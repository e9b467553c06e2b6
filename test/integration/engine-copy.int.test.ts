/**
 * The initial copy merged by snapshot, under a concurrent writer: tables are
 * copied while rows are updated, inserted, deleted and re-keyed — including a
 * transaction that starts before the copy's snapshot and commits after it —
 * with the worker process SIGKILLed during a copy and during the merge; then a
 * table joins the running setup, and a damaged table is resynced. Every
 * table must end equal to the provider, row by row, and sequences must never
 * be behind. Replay a failure with PGCONVEY_SEED=<seed>.
 */
import format from 'pg-format';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDsn } from '../../src/config/index.js';
import { createLogger, runTickerDaemon } from '../../src/daemons/index.js';
import * as engine from '../../src/engine/index.js';
import { diffTable, waitFor } from '../harness/compare.js';
import { freshDatabase, type TestDatabase } from '../harness/databases.js';
import { startCli, type CliProcess } from '../harness/processes.js';
import { createRng, testSeed, type Rng } from '../harness/random.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const SEED = testSeed();

const SCHEMA = `
  CREATE TABLE public.accounts (id bigint PRIMARY KEY, owner text NOT NULL, balance numeric(14,2) NOT NULL, filler text);
  CREATE INDEX accounts_owner ON public.accounts (owner);
  CREATE TABLE public.transfers (id bigserial PRIMARY KEY, account_id bigint NOT NULL REFERENCES public.accounts (id) ON DELETE CASCADE, amount numeric(14,2) NOT NULL);
  CREATE TABLE public.late_table (k text PRIMARY KEY, v int NOT NULL);
`;

const SEED_ROWS = `
  INSERT INTO public.accounts SELECT g, 'owner ' || g, g % 1000, repeat(md5(g::text), 8) FROM generate_series(1, 150000) g;
  INSERT INTO public.transfers (account_id, amount) SELECT 1 + g % 150000, g % 77 FROM generate_series(1, 60000) g;
  INSERT INTO public.late_table SELECT 'k' || g, g FROM generate_series(1, 5000) g;
`;

const TABLES: Array<[string, string[]]> = [
  ['public.accounts', ['id']],
  ['public.transfers', ['id']],
];

describe(`initial copy merged by snapshot (seed ${SEED})`, () => {
  let pdb: TestDatabase;
  let sdb: TestDatabase;
  let prov: pg.Client;
  let sub: pg.Client;
  const tickerStop = new AbortController();
  let ticker: Promise<void>;
  let worker: CliProcess | undefined;
  let stopWriter = false;
  let writer: Promise<void> | undefined;
  const workerArgs = () => ['engine', 'worker', '--provider', pdb.dsn, '--subscriber', sdb.dsn, '--queue', 'q', '--consumer', 'new', '--log-format', 'json'];

  const state = async (table: string) =>
    (await sub.query<{ state: string }>("SELECT state FROM pgconvey.subscriber_table WHERE table_name = $1", [table])).rows[0]?.state;

  beforeAll(async () => {
    console.log(`[engine-copy] seed ${SEED} (replay with PGCONVEY_SEED=${SEED})`);
    pdb = await freshDatabase(sourceServer(), 'copy_p');
    sdb = await freshDatabase(targetServer(), 'copy_s');
    prov = await pdb.connect();
    sub = await sdb.connect();
    await prov.query(SCHEMA);
    await prov.query(SEED_ROWS);
    await sub.query(SCHEMA);
    for (const c of [prov, sub]) await engine.installEngine(c);
    await engine.createQueue(prov, 'q', { tickerMaxLagMs: 50 });
    for (const [t] of TABLES) await engine.addTable(prov, 'q', 'public', t.split('.')[1]!);
    await engine.addSequence(prov, 'q', 'public', 'transfers_id_seq');
    await engine.subscribe(prov, sub, 'q', 'new');
    for (const [t] of TABLES) await engine.addSubscriberTable(sub, 'q', 'new', 'public', t.split('.')[1]!, 'pending');
    ticker = runTickerDaemon({ provider: parseDsn(pdb.dsn), queue: 'q', maintenanceEveryMs: 500, log: createLogger({ level: 'error' }), signal: tickerStop.signal });
    writer = (async () => {
      const c = await pdb.connect();
      try {
        await runWriter(c, createRng(SEED), () => stopWriter);
      } finally {
        await c.end();
      }
    })();
  });

  afterAll(async () => {
    stopWriter = true;
    await writer;
    await worker?.kill();
    tickerStop.abort();
    await ticker;
    await prov?.end();
    await sub?.end();
  });

  async function expectEqual(tables: Array<[string, string[]]>): Promise<void> {
    for (const [table, key] of tables) {
      const d = await diffTable(prov, sub, table, key);
      expect(d, `${table} differs (seed ${SEED})`).toEqual({ ...d, missing: [], extra: [] });
      expect(d.subscriberRows, `${table} rows (seed ${SEED})`).toBe(d.providerRows);
    }
  }

  /** Stops the writer, forces a tick, and waits until the subscriber has applied it with every table ok. */
  async function settle(): Promise<void> {
    stopWriter = true;
    await writer;
    const tick = await engine.forceTick(prov, 'q');
    await waitFor(
      `tick ${tick} applied with every table ok (seed ${SEED})`,
      async () => {
        const r = await sub.query("SELECT completed_tick, (SELECT count(*) FROM pgconvey.subscriber_table WHERE state <> 'ok') AS busy FROM pgconvey.subscription");
        if (process.env.DEBUG_SETTLE) process.stderr.write(`SETTLE ${Date.now()} ${r.rows[0].completed_tick} ${(await sub.query("SELECT string_agg(table_name || '=' || state || '@' || coalesce(copy_tick::text, '') || '/' || coalesce(copy_snapshot, ''), ' ') AS s FROM pgconvey.subscriber_table")).rows[0].s} last=${JSON.stringify((await prov.query('SELECT tick_id, tick_snapshot FROM pgconvey.tick ORDER BY tick_id DESC LIMIT 1')).rows[0])}\n`);
        return BigInt(r.rows[0].completed_tick) >= BigInt(tick) && Number(r.rows[0].busy) === 0;
      },
      90_000,
    ).catch(async (err) => {
      const states = (await sub.query('SELECT table_name, state, last_error FROM pgconvey.subscriber_table')).rows;
      throw new Error(`${(err as Error).message}\ntables: ${JSON.stringify(states)}\nworker log:\n${worker?.lines.slice(-15).join('\n')}`);
    });
  }

  function restartWriter(seed: number): void {
    stopWriter = false;
    writer = (async () => {
      const c = await pdb.connect();
      try {
        await runWriter(c, createRng(seed), () => stopWriter);
      } finally {
        await c.end();
      }
    })();
  }

  it('copies under writes, with a transaction spanning the copy snapshot and the worker killed during copy and merge', { timeout: 180_000 }, async () => {
    // A transaction that starts before the copy's snapshot and commits after it.
    const spanning = await pdb.connect();
    await spanning.query('BEGIN');
    await spanning.query("UPDATE public.accounts SET owner = 'spanning' WHERE id BETWEEN 10 AND 20");
    await spanning.query("INSERT INTO public.accounts VALUES (900001, 'spanning new', 1, NULL)");

    // Kill the worker while it copies.
    worker = startCli(workerArgs());
    await waitFor('a copy in progress', async () => (await state('accounts')) === 'copying' || (await state('transfers')) === 'copying', 60_000, 20);
    await worker.kill('SIGKILL');
    expect(['copying', 'pending']).toContain(await state('accounts'));

    // Again, and this time let the copies finish; kill it while a table merges.
    worker = startCli(workerArgs());
    await waitFor('a table catching up', async () => (await state('accounts')) === 'catching-up' || (await state('transfers')) === 'catching-up', 90_000, 10);
    await spanning.query('COMMIT');
    await spanning.end();
    await worker.kill('SIGKILL');

    worker = startCli(workerArgs());
    await settle();
    await expectEqual(TABLES);
    const status = await engine.tableStatus(sub, 'q', 'new');
    const accounts = status.find((t) => t.table === 'accounts')!;
    expect(accounts).toMatchObject({ state: 'ok', lastError: null });
    expect(accounts.rowsCopied).toBeGreaterThan(140_000);
    expect(accounts.bytesCopied).toBeGreaterThan(accounts.rowsCopied * 100);
    expect(accounts.rowsPerSecond).toBeGreaterThan(0);
    const seq = async (c: pg.Client) => BigInt((await c.query('SELECT last_value FROM public.transfers_id_seq')).rows[0].last_value);
    expect(await seq(sub), `the subscriber's sequence is not behind (seed ${SEED})`).toBeGreaterThanOrEqual(await seq(prov));
  });

  it('a table added to the running setup joins while the others replicate', { timeout: 120_000 }, async () => {
    restartWriter(SEED + 1);
    await engine.addTable(prov, 'q', 'public', 'late_table');
    await engine.addSubscriberTable(sub, 'q', 'new', 'public', 'late_table', 'pending');
    const c = await pdb.connect();
    try {
      for (let i = 0; i < 30; i++) await c.query(format("UPDATE public.late_table SET v = v + 1 WHERE k = %L", `k${i * 7}`));
      await c.query("DELETE FROM public.late_table WHERE k LIKE 'k1%'");
      await c.query("INSERT INTO public.late_table VALUES ('new-1', 1), ('new-2', 2)");
    } finally {
      await c.end();
    }
    await settle();
    await expectEqual([...TABLES, ['public.late_table', ['k']]]);
  });

  it('resync recopies a damaged table while the rest replicates', { timeout: 120_000 }, async () => {
    await sub.query('DELETE FROM public.late_table WHERE v % 3 = 0');
    const damaged = await diffTable(prov, sub, 'public.late_table', ['k']);
    expect(damaged.missing.length).toBeGreaterThan(0);
    restartWriter(SEED + 2);
    await engine.resyncTable(sub, 'q', 'new', 'public', 'late_table');
    await settle();
    await expectEqual([...TABLES, ['public.late_table', ['k']]]);
  });

  it('a copy made while the worker is down merges when it comes back far behind the copy', { timeout: 120_000 }, async () => {
    await worker!.kill('SIGKILL');
    restartWriter(SEED + 4);
    // Let the writer commit well past the worker's position before and during the copy.
    const ticks = async () => BigInt((await prov.query('SELECT max(tick_id) AS t FROM pgconvey.tick')).rows[0].t);
    const from = await ticks();
    await waitFor('a few ticks of writes', async () => (await ticks()) >= from + 5n, 30_000);
    await engine.resyncTable(sub, 'q', 'new', 'public', 'accounts');
    await engine.resyncTable(sub, 'q', 'new', 'public', 'transfers');
    const copied = await engine.copyPendingTables(() => pdb.connect(), () => sdb.connect(), 'q', 'new', { parallel: 2 });
    expect(copied).toBe(2);
    worker = startCli(workerArgs());
    await settle();
    await expectEqual(TABLES);
  });

  it('a table removed from the queue stops being captured and applied', { timeout: 60_000 }, async () => {
    await engine.removeTable(prov, 'q', 'public', 'late_table');
    await engine.removeSubscriberTable(sub, 'q', 'new', 'public', 'late_table');
    const triggers = await prov.query("SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = 'public.late_table'::regclass AND NOT tgisinternal");
    expect(triggers.rows[0].n).toBe(0);
    const before = await diffTable(prov, sub, 'public.late_table', ['k']);
    await prov.query("INSERT INTO public.late_table VALUES ('after-removal', 1)");
    restartWriter(SEED + 3);
    await settle();
    const after = await diffTable(prov, sub, 'public.late_table', ['k']);
    expect(after.subscriberRows).toBe(before.subscriberRows);
    expect(after.missing.some((r) => r.includes('after-removal'))).toBe(true);
    await expectEqual(TABLES);
  });
});

/** Random writes to accounts and transfers until told to stop. */
async function runWriter(c: pg.Client, rng: Rng, stopped: () => boolean): Promise<void> {
  let next = 1_000_000 + rng.int(0, 1000) * 1000;
  while (!stopped()) {
    try {
      await c.query('BEGIN');
      for (let i = rng.int(1, 4); i > 0; i--) {
        const id = rng.int(1, 150_000);
        const op = rng.int(0, 5);
        if (op === 0) await c.query(format("INSERT INTO public.accounts VALUES (%s, 'w', %s, NULL)", next++, rng.int(0, 1000)));
        else if (op === 1) await c.query(format('UPDATE public.accounts SET balance = balance + 1 WHERE id = %s', id));
        else if (op === 2) await c.query(format('UPDATE public.accounts SET id = %s WHERE id = %s', next++, id));
        else if (op === 3) await c.query(format('DELETE FROM public.accounts WHERE id = %s', id));
        else if (op === 4) await c.query(format('INSERT INTO public.transfers (account_id, amount) SELECT id, 5 FROM public.accounts WHERE id >= %s ORDER BY id LIMIT 1', id));
        else await c.query(format('UPDATE public.transfers SET amount = amount + 1 WHERE id = %s', rng.int(1, 60_000)));
      }
      await c.query('COMMIT');
    } catch {
      await c.query('ROLLBACK').catch(() => undefined);
    }
  }
}
