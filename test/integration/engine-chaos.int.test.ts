/**
 * The exactly-once promise under fire: a seeded random workload (inserts,
 * updates, key changes, deletes, TRUNCATE, multi-statement and aborted
 * transactions, a transaction held open across several ticks, TOASTed values,
 * three concurrent writers) replicates while the apply worker — a real CLI
 * process — is killed with SIGKILL at random moments, at least 20 times.
 * Afterwards every table must equal the provider, row by row, compared here
 * without pgconvey's help. Replay a failure with PGCONVEY_SEED=<seed>.
 */
import format from 'pg-format';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, runTickerDaemon } from '../../src/daemons/index.js';
import { parseDsn } from '../../src/config/index.js';
import * as engine from '../../src/engine/index.js';
import { diffTable, waitFor } from '../harness/compare.js';
import { freshDatabase, type TestDatabase } from '../harness/databases.js';
import { startCli } from '../harness/processes.js';
import { createRng, testSeed, type Rng } from '../harness/random.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const SEED = testSeed();
const KILLS = 20;
const TABLES: Array<[string, string[]]> = [
  ['public.accounts', ['id']],
  ['public.order_lines', ['order_id', 'line']],
  ['public.kv', ['k']],
  ['public.events_log', ['id']],
];

const SCHEMA = `
  CREATE TABLE public.accounts (id bigint PRIMARY KEY, owner text NOT NULL, balance numeric(20,4) NOT NULL, note text);
  CREATE TABLE public.order_lines (order_id bigint, line int, sku text NOT NULL, qty int NOT NULL, PRIMARY KEY (order_id, line));
  CREATE TABLE public.kv (k text PRIMARY KEY, v text);
  CREATE TABLE public.events_log (id bigserial PRIMARY KEY, payload jsonb NOT NULL, at timestamptz NOT NULL DEFAULT now());
`;

describe(`engine under SIGKILL (seed ${SEED})`, () => {
  let pdb: TestDatabase;
  let sdb: TestDatabase;
  let admin: pg.Client;
  let sub: pg.Client;
  const tickerStop = new AbortController();
  let tickerDone: Promise<void>;

  beforeAll(async () => {
    console.log(`[engine-chaos] seed ${SEED} (replay with PGCONVEY_SEED=${SEED})`);
    pdb = await freshDatabase(sourceServer(), 'chaos_p');
    sdb = await freshDatabase(targetServer(), 'chaos_s');
    admin = await pdb.connect();
    sub = await sdb.connect();
    for (const c of [admin, sub]) {
      await c.query(SCHEMA);
      await engine.installEngine(c);
    }
    await engine.createQueue(admin, 'chaos', { tickerMaxLagMs: 50, tickerIdlePeriodMs: 500, rotationTxids: 500 });
    for (const [t] of TABLES) await engine.addTable(admin, 'chaos', 'public', t.split('.')[1]!);
    await engine.subscribe(admin, sub, 'chaos', 'replica');
    for (const [t] of TABLES) await engine.addSubscriberTable(sub, 'chaos', 'replica', 'public', t.split('.')[1]!);
    tickerDone = runTickerDaemon({ provider: parseDsn(pdb.dsn), queue: 'chaos', maintenanceEveryMs: 300, log: createLogger({ level: 'error' }), signal: tickerStop.signal });
  });

  afterAll(async () => {
    tickerStop.abort();
    await tickerDone;
    await admin?.end();
    await sub?.end();
  });

  it(`replicates exactly while the worker is killed ${KILLS} times`, { timeout: 240_000 }, async () => {
    const rng = createRng(SEED);
    let stop = false;
    const writerStats = { committed: 0, aborted: 0, failed: 0 };
    const writers = [0, 1, 2].map(async (w) => {
      const c = await pdb.connect();
      try {
        await runWriter(c, w, createRng(SEED + 1 + w), () => stop, writerStats);
      } finally {
        await c.end();
      }
    });

    let kills = 0;
    let killedWhileApplying = 0;
    const workerArgs = ['engine', 'worker', '--provider', pdb.dsn, '--subscriber', sdb.dsn, '--queue', 'chaos', '--consumer', 'replica', '--log-format', 'json'];
    while (kills < KILLS) {
      const p = startCli(workerArgs);
      if (rng.chance(0.25)) {
        await sleep(rng.int(0, 400)); // somewhere in start-up or the first batch
      } else {
        // Once it applies batches, kill it somewhere inside the next one (or between two).
        await p.waitForLine(/"msg":"applied batches"/); // the first batch with rows, at once
        await sleep(rng.int(0, 100));
        killedWhileApplying++;
      }
      await p.kill('SIGKILL');
      kills++;
    }
    stop = true;
    await Promise.all(writers);

    // Let a final, undisturbed worker catch up to a tick taken after the last write.
    const final = startCli(workerArgs);
    const lastTick = await engine.forceTick(admin, 'chaos');
    await waitFor(
      `the subscriber to apply tick ${lastTick} (seed ${SEED})`,
      async () => {
        const r = await sub.query("SELECT completed_tick FROM pgconvey.subscription WHERE queue_name = 'chaos'");
        return BigInt(r.rows[0].completed_tick) >= BigInt(lastTick);
      },
      60_000,
    );
    await final.kill('SIGTERM');

    expect(writerStats.committed, 'the workload committed transactions').toBeGreaterThan(100);
    expect(killedWhileApplying, 'some kills hit a worker that was applying').toBeGreaterThan(0);
    for (const [table, key] of TABLES) {
      const d = await diffTable(admin, sub, table, key);
      expect(d, `${table} differs (seed ${SEED})`).toEqual({ ...d, missing: [], extra: [] });
      expect(d.subscriberRows, `${table} row count (seed ${SEED})`).toBe(d.providerRows);
    }
    // Once the consumer has caught up, the ticker's maintenance empties the tables it has read.
    await waitFor('event tables to be emptied', async () => Number((await admin.query("SELECT rotations FROM pgconvey.queue WHERE queue_name = 'chaos'")).rows[0].rotations) > 0, 30_000);
    console.log(`[engine-chaos] seed ${SEED}: ${writerStats.committed} commits, ${writerStats.aborted} rollbacks, ${writerStats.failed} failed, ${kills} kills (${killedWhileApplying} while applying)`);
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** One writer: random transactions on its own key space until told to stop. */
async function runWriter(c: pg.Client, w: number, rng: Rng, stopped: () => boolean, stats: { committed: number; aborted: number; failed: number }): Promise<void> {
  let counter = 1;
  const fresh = () => w + 3 * counter++;
  const someAccount = () => format('(SELECT id FROM public.accounts WHERE id %% 3 = %s AND id >= %s ORDER BY id LIMIT 1)', w, rng.int(0, 3 * counter));
  const someOrder = () => format('(SELECT order_id FROM public.order_lines WHERE order_id %% 3 = %s AND order_id >= %s ORDER BY order_id LIMIT 1)', w, rng.int(0, 3 * counter));
  const ops: Array<() => string> = [
    () => format("INSERT INTO public.accounts VALUES (%s, %L, %s, %L)", fresh(), `owner-${w}-${counter}`, (rng.int(-1e6, 1e6) / 100).toFixed(2), rng.chance(0.05) ? 'x'.repeat(rng.int(3000, 200_000)) : `note ${rng.int(0, 1e6)}`),
    () => format('UPDATE public.accounts SET balance = balance + %s, note = %L WHERE id = %s', rng.int(-500, 500), `n${rng.int(0, 1e9)}`, someAccount()),
    () => format('UPDATE public.accounts SET id = %s WHERE id = %s', fresh(), someAccount()),
    () => format('DELETE FROM public.accounts WHERE id = %s', someAccount()),
    () => {
      const order = fresh();
      const lines = Array.from({ length: rng.int(1, 6) }, (_, i) => format('(%s, %s, %L, %s)', order, i + 1, `sku-${rng.int(1, 500)}`, rng.int(1, 20)));
      return `INSERT INTO public.order_lines VALUES ${lines.join(', ')}`;
    },
    () => format('UPDATE public.order_lines SET qty = qty + 1 WHERE order_id = %s', someOrder()),
    () => format('UPDATE public.order_lines SET line = line + 100 WHERE order_id = %s AND line < 100', someOrder()),
    () => format('DELETE FROM public.order_lines WHERE order_id = %s AND line %% 2 = 0', someOrder()),
    () => format('INSERT INTO public.kv VALUES (%L, %L) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v', `w${w}-k${rng.int(0, 30)}`, `v${rng.int(0, 1e6)}`),
    () => format('DELETE FROM public.kv WHERE k = %L', `w${w}-k${rng.int(0, 30)}`),
    () => format('INSERT INTO public.events_log (payload) VALUES (%L)', JSON.stringify({ w, n: rng.int(0, 1e9), tags: ['a', 'b'].slice(0, rng.int(0, 2)) })),
  ];
  let heldLongTransaction = false;
  while (!stopped()) {
    try {
      await c.query('BEGIN');
      const n = rng.int(1, 6);
      for (let i = 0; i < n; i++) await c.query(rng.pick(ops)());
      if (w === 0 && rng.chance(0.01)) await c.query('TRUNCATE public.kv');
      if (w === 1 && !heldLongTransaction && counter > 50) {
        // Hold this transaction open across several ticks before committing.
        heldLongTransaction = true;
        const other = new (c.constructor as typeof pg.Client)((c as unknown as { connectionParameters: pg.ClientConfig }).connectionParameters);
        await other.connect();
        const ticks = async () => Number((await other.query('SELECT max(tick_id) AS t FROM pgconvey.tick')).rows[0].t);
        const before = await ticks();
        await waitFor('three ticks while a transaction is open', async () => (await ticks()) >= before + 3, 30_000);
        await other.end();
      }
      if (rng.chance(0.05)) {
        await c.query('ROLLBACK');
        stats.aborted++;
      } else {
        await c.query('COMMIT');
        stats.committed++;
      }
    } catch {
      stats.failed++;
      await c.query('ROLLBACK').catch(() => undefined);
    }
  }
}
