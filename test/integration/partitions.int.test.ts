/**
 * Partitioned tables replicate as a whole, old → new, through plan/apply and
 * the daemons: a payment table partitioned by month (like Pagila's), with a
 * partition attached with its columns in another order, a sub-partitioned
 * month (a plain partition on the subscriber: another layout), and a default
 * partition (PG 11+). A writer inserts, updates and deletes, and moves rows
 * between partitions (PG 11+); a month added mid-run (created by hand on the
 * subscriber) is planned and replicated; TRUNCATE of a leaf, of a
 * sub-partitioned month and of the parent stay exact; DETACH on the provider
 * is shown by plan; compare covers the parent. Every check is our own SQL,
 * row by row (diffTable over the parent: all its rows), and every apply is
 * followed by a plan without changes. Replay with PGCONVEY_SEED=<seed>.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { introspectDatabases } from '../../src/catalog/index.js';
import { loadDesiredStateFromText, parseDsn, type DesiredState } from '../../src/config/index.js';
import { createLogger, runTickerDaemon, runWorkerDaemon } from '../../src/daemons/index.js';
import { ENGINE_CONTENT, ENGINE_VERSION } from '../../src/engine/index.js';
import { connectionsOf, executePlan } from '../../src/executor/index.js';
import { compareState } from '../../src/operations/index.js';
import { buildPlan, type Plan } from '../../src/planner/index.js';
import { diffTable, waitFor } from '../harness/compare.js';
import { freshDatabase, type TestDatabase } from '../harness/databases.js';
import { createRng, testSeed, type Rng } from '../harness/random.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const SEED = testSeed();
const OLD = sourceServer().major;
/** PG 10: no keys, default partitions or row movement on partitioned tables. */
const MODERN = OLD >= 11;

const month = (m: number) => `2024-${String(m).padStart(2, '0')}-01`;
const PROVIDER_SCHEMA = `
  CREATE TABLE public.payment (payment_id int NOT NULL, customer_id int NOT NULL, amount numeric(6,2) NOT NULL,
    payment_date timestamptz NOT NULL, note text${MODERN ? ', PRIMARY KEY (payment_date, payment_id)' : ''}) PARTITION BY RANGE (payment_date);
  CREATE TABLE public.payment_p2024_01 PARTITION OF public.payment FOR VALUES FROM ('${month(1)}') TO ('${month(2)}');
  CREATE TABLE public.payment_p2024_02 PARTITION OF public.payment FOR VALUES FROM ('${month(2)}') TO ('${month(3)}');
  -- Made on its own, columns in another order and one dropped, then attached.
  CREATE TABLE public.payment_p2024_03 (gone int, note text, payment_date timestamptz NOT NULL, amount numeric(6,2) NOT NULL, customer_id int NOT NULL, payment_id int NOT NULL);
  ALTER TABLE public.payment_p2024_03 DROP COLUMN gone;
  ALTER TABLE public.payment ATTACH PARTITION public.payment_p2024_03 FOR VALUES FROM ('${month(3)}') TO ('${month(4)}');
  CREATE TABLE public.payment_p2024_04 PARTITION OF public.payment FOR VALUES FROM ('${month(4)}') TO ('${month(5)}') PARTITION BY RANGE (payment_date);
  CREATE TABLE public.payment_p2024_04_a PARTITION OF public.payment_p2024_04 FOR VALUES FROM ('${month(4)}') TO ('2024-04-15');
  CREATE TABLE public.payment_p2024_04_b PARTITION OF public.payment_p2024_04 FOR VALUES FROM ('2024-04-15') TO ('${month(5)}');
  ${MODERN ? 'CREATE TABLE public.payment_default PARTITION OF public.payment DEFAULT;' : ''}
  ${MODERN ? '' : `DO $$ DECLARE t text; BEGIN FOR t IN SELECT unnest(ARRAY['payment_p2024_01', 'payment_p2024_02', 'payment_p2024_03', 'payment_p2024_04_a', 'payment_p2024_04_b']) LOOP
       EXECUTE format('ALTER TABLE public.%I ADD PRIMARY KEY (payment_date, payment_id)', t); END LOOP; END $$;`}
  CREATE TABLE public.customer (customer_id int PRIMARY KEY, name text);
`;
// The subscriber's layout differs: April is one plain partition, no default on PG 10 sources either way.
const SUBSCRIBER_SCHEMA = `
  CREATE TABLE public.payment (payment_id int NOT NULL, customer_id int NOT NULL, amount numeric(6,2) NOT NULL,
    payment_date timestamptz NOT NULL, note text, PRIMARY KEY (payment_date, payment_id)) PARTITION BY RANGE (payment_date);
  CREATE TABLE public.payment_p2024_01 PARTITION OF public.payment FOR VALUES FROM ('${month(1)}') TO ('${month(2)}');
  CREATE TABLE public.payment_p2024_02 PARTITION OF public.payment FOR VALUES FROM ('${month(2)}') TO ('${month(3)}');
  CREATE TABLE public.payment_p2024_03 PARTITION OF public.payment FOR VALUES FROM ('${month(3)}') TO ('${month(4)}');
  CREATE TABLE public.payment_p2024_04 PARTITION OF public.payment FOR VALUES FROM ('${month(4)}') TO ('${month(5)}');
  CREATE TABLE public.payment_default PARTITION OF public.payment DEFAULT;
  CREATE TABLE public.customer (customer_id int PRIMARY KEY, name text);
`;
/** Dates the writer uses: January to April 2024, and (PG 11+) 2023 for the default partition. */
const dateOf = (rng: Rng) => (MODERN && rng.int(0, 9) === 0 ? `2023-0${rng.int(1, 9)}-15 10:00:00+00` : `2024-0${rng.int(1, 4)}-${String(rng.int(1, 28)).padStart(2, '0')} ${rng.int(0, 23)}:00:00+00`);

const yaml = (oldDsn: string, newDsn: string, entries = '') => `version: 1
databases:
  old: "${oldDsn}"
  new: "${newDsn}"
queues:
  q:
    nodes:
      root: { database: old, type: root }
      new: { database: new, type: leaf, provider: root }
    tables:
      include: ["public.*"]
${MODERN && !entries ? '' : '      entries:\n'}${MODERN ? '' : '        public.payment: { key: [payment_date, payment_id] }\n'}${entries}`;

describe(`partitioned tables, PG ${OLD} → PG ${targetServer().major} (seed ${SEED})`, () => {
  let pdb: TestDatabase;
  let sdb: TestDatabase;
  let prov: pg.Client;
  let sub: pg.Client;
  let state: DesiredState;
  const tickerStop = new AbortController();
  let workerStop = new AbortController();
  let ticker: Promise<void>;
  let worker: Promise<void>;
  let nextId = 1;

  const plan = async (s = state): Promise<Plan> => buildPlan({ state: s, catalogs: await introspectDatabases(s.databases), engineVersion: ENGINE_VERSION, engineContent: ENGINE_CONTENT });
  // PG 10 has no keys on partitioned tables: the subscriber parent's primary key is one the provider lacks (true, and not what these cases check).
  const codes = (p: Plan) =>
    p.checks.map((c) => `${c.severity}:${c.code}`).filter((c) => MODERN || c !== 'warning:subscriber_unique_not_on_provider').sort();

  /** Applies the plan, then plans again: no changes. */
  async function applyAndReplan(p: Plan): Promise<Plan> {
    expect(p.errored, JSON.stringify(p.checks)).toBe(false);
    await executePlan(p, connectionsOf(state.databases));
    const again = await plan();
    expect(again.actions.map((a) => a.id)).toEqual([]);
    return again;
  }

  async function synced(): Promise<void> {
    const tick = (await prov.query<{ t: string }>("SELECT pgconvey.force_tick('q')::text AS t")).rows[0]!.t;
    await waitFor(`tick ${tick} applied`, async () => BigInt((await sub.query('SELECT completed_tick FROM pgconvey.subscription')).rows[0].completed_tick) >= BigInt(tick), 60_000);
  }

  async function expectSame(what: string): Promise<void> {
    await synced();
    const d = await diffTable(prov, sub, 'public.payment', ['payment_date', 'payment_id']);
    expect(d, `${what} (seed ${SEED})`).toEqual({ ...d, missing: [], extra: [], subscriberRows: d.providerRows });
    // Each month the two layouts share holds the same rows too (routed by the subscriber's parent), read by
    // column name: March's columns are in another order on the provider.
    for (const leaf of ['payment_p2024_01', 'payment_p2024_03']) {
      const [a, b] = await Promise.all([prov, sub].map((c) => leafRows(c, leaf)));
      expect(b, `${what}: ${leaf}`).toEqual(a);
    }
  }

  async function leafRows(c: pg.Client, leaf: string): Promise<string[]> {
    await c.query("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'");
    const { rows } = await c.query<{ r: string }>(
      `SELECT ROW(payment_id, customer_id, amount, payment_date, note, to_jsonb(t) -> 'channel')::text AS r FROM public.${leaf} t ORDER BY payment_date, payment_id`,
    );
    return rows.map((x) => x.r);
  }

  async function insertRows(c: pg.Client, n: number, date: (i: number) => string): Promise<void> {
    const rows = Array.from({ length: n }, (_, i) => [nextId++, (nextId * 7) % 100, ((nextId % 5000) / 100).toFixed(2), date(i)]);
    await c.query(
      `INSERT INTO public.payment (payment_id, customer_id, amount, payment_date, note)
       SELECT r[1]::int, r[2]::int, r[3]::numeric, r[4]::timestamptz, 'n' || r[1] FROM (SELECT pg_catalog.json_array_elements_text($1::json)::json AS j) x,
              LATERAL (SELECT ARRAY(SELECT pg_catalog.json_array_elements_text(x.j)) AS r) y`,
      [JSON.stringify(rows.map((r) => r.map(String)))],
    );
  }

  beforeAll(async () => {
    console.log(`[partitions] seed ${SEED} (replay with PGCONVEY_SEED=${SEED})`);
    pdb = await freshDatabase(sourceServer(), 'part_p');
    sdb = await freshDatabase(targetServer(), 'part_s');
    await pdb.query(PROVIDER_SCHEMA);
    await sdb.query(SUBSCRIBER_SCHEMA);
    prov = await pdb.connect();
    sub = await sdb.connect();
    const rng = createRng(SEED);
    await insertRows(prov, 3000, () => dateOf(rng));
    await prov.query("INSERT INTO public.customer SELECT g, 'c' || g FROM generate_series(1, 100) g");
    state = loadDesiredStateFromText('partitions.yaml', yaml(pdb.dsn, sdb.dsn), {}).state!;
  }, 120_000);

  afterAll(async () => {
    workerStop.abort();
    tickerStop.abort();
    await Promise.all([ticker, worker]);
    await prov?.end();
    await sub?.end();
  });

  it('plans the parent as one table (its partitions with it), copies and replicates it under a writer that moves rows', { timeout: 240_000 }, async () => {
    const first = await plan();
    // The partitions match public.* too: they replicate as part of the parent, not on their own.
    expect(first.actions.filter((a) => a.kind === 'capture_table').map((a) => a.object)).toEqual(['public.customer', 'public.payment']);
    expect(first.actions.filter((a) => a.kind === 'add_subscriber_table').map((a) => a.object)).toEqual(['public.customer', 'public.payment']);
    // April is one plain partition on the subscriber: its sub-partitions' names are missing there.
    expect(codes(first)).toEqual(['warning:partition_missing_on_subscriber']);
    expect(first.checks.find((c) => c.code === 'partition_missing_on_subscriber')!.message).toContain('public.payment_p2024_04_a, public.payment_p2024_04_b');

    // A partition listed on its own while its parent is selected: the parent wins, with a warning.
    const listed = loadDesiredStateFromText('p.yaml', yaml(pdb.dsn, sdb.dsn, '        public.payment_p2024_02: {}\n'), {}).state!;
    const withEntry = await plan(listed);
    expect(codes(withEntry)).toEqual(['warning:partition_covered_by_parent', 'warning:partition_missing_on_subscriber']);
    expect(withEntry.actions.map((a) => a.id)).toEqual(first.actions.map((a) => a.id));

    await applyAndReplan(first);
    const log = createLogger({ level: 'error' });
    ticker = runTickerDaemon({ provider: parseDsn(pdb.dsn), queue: 'q', log, signal: tickerStop.signal });
    worker = runWorkerDaemon({ provider: parseDsn(pdb.dsn), subscriber: parseDsn(sdb.dsn), queue: 'q', consumer: 'new', log, signal: workerStop.signal });

    // A writer runs from before the copy to after it: inserts, updates (some moving a row to another month,
    // or from one half of April's sub-partitions to the other), deletes, in transactions of a few statements.
    let stop = false;
    let transactions = 0;
    let moves = 0;
    const writer = (async () => {
      const c = await pdb.connect();
      const rng = createRng(SEED + 1);
      try {
        while (!stop) {
          await c.query('BEGIN');
          for (let i = rng.int(1, 4); i > 0; i--) {
            const op = rng.int(0, 9);
            const id = rng.int(1, nextId);
            if (op < 3) await insertRows(c, rng.int(1, 5), () => dateOf(rng));
            else if (op < 6) await c.query('UPDATE public.payment SET amount = amount + 1, note = $2 WHERE payment_id = $1', [id, `u${transactions}`]);
            else if (op < 8 && MODERN) moves += (await c.query('UPDATE public.payment SET payment_date = $2, customer_id = $3 WHERE payment_id = $1', [id, dateOf(rng), rng.int(0, 99)])).rowCount ?? 0;
            else await c.query('DELETE FROM public.payment WHERE payment_id = $1', [id]);
          }
          await c.query('COMMIT');
          transactions++;
        }
      } finally {
        await c.end();
      }
    })();
    await waitFor('both tables copied (state ok)', async () => (await sub.query("SELECT count(*) FILTER (WHERE state = 'ok') AS ok FROM pgconvey.subscriber_table")).rows[0].ok === '2', 120_000);
    await waitFor('the writer ran 300 transactions', async () => transactions >= 300, 120_000);
    stop = true;
    await writer;
    await expectSame('after the copy under a writer');
    console.log(`[partitions] ${transactions} writer transactions, ${moves} rows moved to another date, ${(await prov.query('SELECT count(*)::int AS n FROM public.payment')).rows[0].n} rows`);
    if (MODERN) expect(moves).toBeGreaterThan(0);
    expect((await plan()).actions).toEqual([]);
  });

  it('picks up a partition added on the provider at the next apply', { timeout: 120_000 }, async () => {
    await sub.query(`CREATE TABLE public.payment_p2024_05 PARTITION OF public.payment FOR VALUES FROM ('${month(5)}') TO ('${month(6)}')`);
    await prov.query(`CREATE TABLE public.payment_p2024_05 PARTITION OF public.payment FOR VALUES FROM ('${month(5)}') TO ('${month(6)}')`);
    if (!MODERN) await prov.query('ALTER TABLE public.payment_p2024_05 ADD PRIMARY KEY (payment_date, payment_id)');
    // From PG 11 the new partition's rows are captured from its first row (the row trigger is cloned).
    if (MODERN) await insertRows(prov, 50, (i) => `2024-05-${String(1 + (i % 28)).padStart(2, '0')} 12:00:00+00`);
    const p = await plan();
    expect(p.actions.map((a) => [a.id, a.reason])).toEqual([['capture_table:root:public.payment', 'partition(s) public.payment_p2024_05 attached or created since it was captured']]);
    expect(codes(p)).toEqual([...(MODERN ? [] : ['warning:partition_captured_late']), 'warning:partition_missing_on_subscriber']);
    await applyAndReplan(p);
    await insertRows(prov, 50, (i) => `2024-05-${String(1 + (i % 28)).padStart(2, '0')} 18:00:00+00`);
    await prov.query("UPDATE public.payment SET amount = amount * 2 WHERE payment_date >= '2024-05-01'");
    await expectSame('a month added mid-run');
    expect(Number((await sub.query("SELECT count(*) FROM public.payment_p2024_05")).rows[0].count)).toBe(MODERN ? 100 : 50);
  });

  it('keeps TRUNCATE of a leaf, of a sub-partitioned month and of the parent exact', { timeout: 120_000 }, async () => {
    const count = async (c: pg.Client, where: string) => Number((await c.query(`SELECT count(*) FROM public.payment WHERE ${where}`)).rows[0].count);
    const jan = `payment_date >= '${month(1)}' AND payment_date < '${month(2)}'`;
    const apr = `payment_date >= '${month(4)}' AND payment_date < '${month(5)}'`;
    expect(await count(sub, jan)).toBeGreaterThan(0);
    const before = await count(sub, 'true');
    // One leaf: only its rows go on the subscriber, whose parent holds the other months too.
    await prov.query('BEGIN');
    await insertRows(prov, 5, () => '2024-01-20 08:00:00+00');
    await prov.query('TRUNCATE public.payment_p2024_01');
    await insertRows(prov, 3, () => '2024-01-21 08:00:00+00');
    await prov.query('COMMIT');
    await expectSame('TRUNCATE of one leaf');
    expect(await count(sub, jan)).toBe(3);
    expect(await count(sub, 'true')).toBeLessThan(before);
    // A sub-partitioned month (a plain partition on the subscriber), and a leaf with its parent in one statement.
    await prov.query('TRUNCATE public.payment_p2024_04');
    await expectSame('TRUNCATE of a sub-partitioned month');
    expect(await count(sub, apr)).toBe(0);
    await prov.query('TRUNCATE public.payment_p2024_04_a, public.payment_p2024_03');
    await expectSame('TRUNCATE of two partitions at once');
    expect((await plan()).actions).toEqual([]);
  });

  it('carries a column added to the parent (every partition gets it) from the next write on, in a session that wrote before', { timeout: 120_000 }, async () => {
    await prov.query("UPDATE public.payment SET note = 'before' WHERE payment_id % 10 = 0"); // this session knows the partitions' shapes
    await synced();
    // A running worker keeps the subscriber's columns it read (for plain tables too) until the table is
    // captured again: it is stopped across the DDL and started afresh.
    workerStop.abort();
    await worker;
    await sub.query('ALTER TABLE public.payment ADD COLUMN channel text');
    await prov.query('ALTER TABLE public.payment ADD COLUMN channel text');
    await prov.query("UPDATE public.payment SET channel = 'web' WHERE payment_id % 3 = 0");
    await insertRows(prov, 20, (i) => `2024-0${1 + (i % 4)}-11 11:00:00+00`);
    workerStop = new AbortController();
    worker = runWorkerDaemon({ provider: parseDsn(pdb.dsn), subscriber: parseDsn(sdb.dsn), queue: 'q', consumer: 'new', log: createLogger({ level: 'error' }), signal: workerStop.signal });
    await expectSame('a column added to the partitioned table');
    expect(Number((await sub.query("SELECT count(*) FROM public.payment WHERE channel = 'web'")).rows[0].count)).toBeGreaterThan(0);
    const p = await plan();
    expect(p.actions.map((a) => a.id)).toEqual(['capture_table:root:public.payment']);
    await applyAndReplan(p);
    await prov.query("UPDATE public.payment SET channel = 'shop' WHERE payment_id % 3 = 1");
    await expectSame('after the capture was made again');
  });

  it('shows a DETACH on the provider in plan, and compare covers the parent', { timeout: 120_000 }, async () => {
    const report = await compareState(state, {});
    const payment = report.tables.find((t) => t.table === 'public.payment')!;
    expect(payment).toMatchObject({ equal: true, providerRows: Number((await prov.query('SELECT count(*) FROM public.payment')).rows[0].count) });
    expect(payment.providerRows).toBeGreaterThan(0);

    await prov.query('ALTER TABLE public.payment DETACH PARTITION public.payment_p2024_02');
    await prov.query("INSERT INTO public.payment_p2024_02 VALUES (999999, 1, 1, '2024-02-10 00:00:00+00', 'detached')");
    const p = await plan();
    // The detached table is an ordinary table now, and public.* selects it: it replicates on its own from here.
    expect(p.actions.map((a) => [a.id, a.reason])).toEqual([
      ['capture_table:root:public.payment', 'table(s) public.payment_p2024_02 detached from it (their capture triggers go)'],
      ['capture_table:root:public.payment_p2024_02', "it matches the queue's tables and is not captured yet"],
      ['add_subscriber_table:new:public.payment_p2024_02', expect.stringContaining('the copy replaces its rows')],
    ]);
    const detached = p.checks.filter((c) => c.code === 'partition_detached');
    expect(detached.map((c) => c.message)).toEqual([
      expect.stringContaining('table public.payment_p2024_02 was a partition of public.payment (queue "q") and is detached on the provider'),
      expect.stringContaining('table public.payment_p2024_02 is a partition of public.payment on node "new" but not on the provider'),
    ]);
    const after = await applyAndReplan(p);
    // Still attached on the subscriber: plan keeps saying so, and compare sees the parent differ.
    expect(codes(after)).toContain('warning:partition_detached');
    await waitFor('the detached table copied', async () => (await sub.query("SELECT count(*) FILTER (WHERE state = 'ok') AS ok FROM pgconvey.subscriber_table")).rows[0].ok === '3', 60_000);
    await synced();
    expect((await compareState(state, {})).tables.find((t) => t.table === 'public.payment')!.equal).toBe(false);
    await sub.query('ALTER TABLE public.payment DETACH PARTITION public.payment_p2024_02');
    expect(codes(await plan())).not.toContain('warning:partition_detached');
    await expectSame('after DETACH on both sides');
    const equalNow = await compareState(state, {});
    expect(equalNow.tables.map((t) => [t.table, t.equal])).toEqual([
      ['public.customer', true],
      ['public.payment', true],
      ['public.payment_p2024_02', true],
    ]);
    // Writes to the detached table are its own, not the parent's.
    await prov.query("UPDATE public.payment_p2024_02 SET note = 'still detached'");
    await expectSame('writes to a detached table');
    expect(await leafRows(sub, 'payment_p2024_02')).toEqual(await leafRows(prov, 'payment_p2024_02'));

    await prov.query('TRUNCATE public.payment');
    await insertRows(prov, 10, () => '2024-03-03 03:00:00+00');
    await expectSame('TRUNCATE of the parent');
    expect(Number((await sub.query('SELECT count(*) FROM public.payment')).rows[0].count)).toBe(10);
    expect((await plan()).actions).toEqual([]);
  });
});
