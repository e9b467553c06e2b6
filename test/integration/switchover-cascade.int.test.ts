/**
 * Switchover inside a cascade (issue 16 parts 4 and 6), on three majors: the
 * root on the test run's source server (12), a branch on a PostgreSQL 16
 * server started here, a leaf under the branch on the target server (17).
 * `pgconvey apply`, one `pgconvey run`, a seeded writer on the root writing up
 * to the fence; `switchover --to b --reverse` is SIGKILLed in its drain (a
 * session holding the branch's position blocks it) and run again; then the
 * branch takes writes as the root of its own queue: the leaf keeps following
 * it (its position on the branch's queue, the same tick ids), the old root
 * follows it back; and the switch back (`--to root`) makes the branch follow
 * the root again, the leaf still under it. After each step every node equals
 * the writable one row by row (the harness's own SQL), and plan on the
 * unchanged file is checked for what it says. Second case, without
 * --reverse: the switchover killed in its drain is undone with `--to root`
 * (the cascade follows the root again), switched over again, and the switch
 * back is refused (switchover_no_reverse).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/embedded/index.js';
import { runCli } from '../harness/cli.js';
import { waitFor } from '../harness/compare.js';
import { freshDatabase } from '../harness/databases.js';
import { compareTable } from '../harness/exact.js';
import { startCli, type CliProcess } from '../harness/processes.js';
import { createRng, testSeed, type Rng } from '../harness/random.js';
import { sourceServer, targetServer } from '../harness/servers.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

const SCHEMA = `
  CREATE TABLE public.accounts (id int PRIMARY KEY, balance int NOT NULL, note text);
  CREATE TABLE public.items (id bigserial PRIMARY KEY, account int NOT NULL, payload jsonb);`;
const SEED = `
  INSERT INTO public.accounts SELECT g, g * 10, 'seed ' || g FROM generate_series(1, 500) g;
  INSERT INTO public.items (account, payload) SELECT g % 500 + 1, jsonb_build_object('n', g) FROM generate_series(1, 1000) g;`;
const TABLES = ['accounts', 'items'];

interface Db {
  dsn: string;
  config: pg.ClientConfig;
  connect(): Promise<pg.Client>;
}

let pg16: RunningServer | undefined;

async function db16(): Promise<Db> {
  const name = `soc_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ host: pg16!.host, port: pg16!.port, user: pg16!.user, database: 'postgres' });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name} TEMPLATE template0 ENCODING 'UTF8'`);
  await admin.end();
  const config = { host: pg16!.host, port: pg16!.port, user: pg16!.user, database: name };
  return {
    dsn: `host=${pg16!.host} port=${pg16!.port} user=${pg16!.user} dbname=${name}`,
    config,
    connect: async () => {
      const c = new pg.Client(config);
      c.on('error', () => undefined);
      await c.connect();
      return c;
    },
  };
}

beforeAll(async () => {
  pg16 = await startServer({ major: 16 });
}, 120_000);
afterAll(async () => {
  await pg16?.stop();
});

/** One random transaction of the application. */
async function writeOnce(c: pg.Client, rng: Rng, n: number): Promise<void> {
  const id = 1 + rng.int(0, 599);
  await c.query('BEGIN');
  switch (rng.int(0, 3)) {
    case 0:
      await c.query('INSERT INTO public.accounts VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET balance = public.accounts.balance + 1', [id, n, `w${n}`]);
      break;
    case 1:
      await c.query('UPDATE public.accounts SET balance = balance - 1, note = $2 WHERE id % 17 = $1', [id % 17, `u${n}`]);
      break;
    case 2:
      await c.query('DELETE FROM public.items WHERE id IN (SELECT id FROM public.items WHERE account = $1 LIMIT 2)', [id % 500 + 1]);
      break;
    default:
      await c.query("INSERT INTO public.items (account, payload) SELECT $1, jsonb_build_object('w', $2::int, 'g', g) FROM generate_series(1, 3) g", [id, n]);
  }
  await c.query('COMMIT');
}

/** Writes until a write is refused with SQLSTATE 25006 (the fence), or `stop()`; returns how many committed. */
function writer(connect: () => Promise<pg.Client>, rng: Rng) {
  let stopped = false;
  let committed = 0;
  let refused = false;
  const open = async () => {
    const c = await connect();
    c.on('error', () => undefined); // ended by the fence: reconnected below
    return c;
  };
  const done = (async () => {
    let c = await open();
    try {
      for (let n = 0; !stopped; n++) {
        try {
          await writeOnce(c, rng, n);
          committed++;
        } catch (err) {
          await c.query('ROLLBACK').catch(() => undefined);
          if ((err as { code?: string }).code === '25006') {
            refused = true;
            return;
          }
          // The fence ends the sessions that were connected before it: the application reconnects.
          if ((err as { code?: string }).code !== '57P01' && !/Connection terminated|not queryable/.test(String(err))) throw err;
          await c.end().catch(() => undefined);
          c = await open();
        }
      }
    } finally {
      await c.end().catch(() => undefined);
    }
  })();
  return {
    done,
    stop: async () => {
      stopped = true;
      await done;
    },
    get committed() {
      return committed;
    },
    get refused() {
      return refused;
    },
  };
}

const yaml = (dsn: Record<'root' | 'b' | 'l', string>) =>
  [
    'version: 1',
    'databases:',
    ...Object.entries(dsn).map(([k, v]) => `  ${k}_db: "${v}"`),
    'daemons:',
    '  worker: { retry_delay: 200ms }',
    'queues:',
    '  shop:',
    '    nodes:',
    '      root: { database: root_db, type: root }',
    '      b: { database: b_db, type: branch, provider: root }',
    '      l: { database: l_db, type: leaf, provider: b }',
    '    tables: { include: ["public.*"] }',
    '    sequences: { include: ["public.*"] }',
    '',
  ].join('\n');

async function equalRows(a: pg.Client, b: pg.Client): Promise<boolean> {
  for (const t of TABLES) {
    const d = await compareTable(a, b, 'public', t);
    if (d.missing.length || d.extra.length || d.providerRows !== d.subscriberRows) return false;
  }
  return true;
}

async function expectEqual(a: pg.Client, b: pg.Client): Promise<void> {
  for (const t of TABLES) expect(await compareTable(a, b, 'public', t)).toMatchObject({ missing: [], extra: [] });
}

async function writeError(connect: () => Promise<pg.Client>, sql: string): Promise<string | null> {
  const c = await connect();
  try {
    await c.query(sql);
    return null;
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  } finally {
    await c.end();
  }
}

const queueRow = async (c: pg.Client) =>
  (await c.query<{ provider: string | null; consumer: string | null; last: string }>(
    "SELECT q.branch_provider AS provider, q.branch_consumer AS consumer, (SELECT max(tick_id)::text FROM pgconvey.tick t WHERE t.queue_id = q.queue_id) AS last FROM pgconvey.queue q WHERE queue_name = 'shop'",
  )).rows[0];
const position = async (c: pg.Client, consumer: string) => (await c.query<{ t: string }>("SELECT completed_tick::text AS t FROM pgconvey.subscription WHERE queue_name = 'shop' AND consumer_name = $1", [consumer])).rows[0]?.t;

describe('switchover inside a cascade: root (12) → b (16) → l (17)', () => {
  it('to the branch (killed in its drain, run again), writes on it reach the leaf and the old root; back to the root, the branch and leaf follow it again', { timeout: 600_000 }, async () => {
    const seed = testSeed();
    const rng = createRng(seed);
    process.stderr.write(`[switchover-cascade] seed ${seed} (PGCONVEY_SEED=${seed} replays it)\n`);
    const rootDb = await freshDatabase(sourceServer(), 'soc_r');
    const lDb = await freshDatabase(targetServer(), 'soc_l');
    const bDb = await db16();
    // The checking sessions are named as pgconvey's: a fence does not end them.
    const checker = async (config: pg.ClientConfig) => {
      const x = new pg.Client({ ...config, application_name: 'pgconvey:test-check' });
      await x.connect();
      return x;
    };
    const c: Record<'root' | 'b' | 'l', pg.Client> = { root: await checker(rootDb.config), b: await checker(bDb.config), l: await checker(lDb.config) };
    for (const x of Object.values(c)) await x.query(SCHEMA);
    await c.root.query(SEED);
    const file = `${mkdtempSync('/tmp/pgconvey-test-')}/cascade.yaml`;
    writeFileSync(file, yaml({ root: rootDb.dsn, b: bDb.dsn, l: lDb.dsn }));
    const applied = await runCli(['apply', file, '--auto-approve'], { timeoutMs: 180_000 });
    expect(applied.code, applied.stdout + applied.stderr).toBe(0);

    const run: CliProcess = startCli(['run', file, '--log-format', 'json']);
    let switchover: CliProcess | null = null;
    const holder = new pg.Client({ ...bDb.config, application_name: 'pgconvey:test-holder' });
    try {
      await waitFor('every table ok on b and l', async () => {
        for (const n of ['b', 'l'] as const) {
          const { rows } = await c[n].query<{ n: number }>("SELECT count(*) FILTER (WHERE state = 'ok')::int AS n FROM pgconvey.subscriber_table WHERE queue_name = 'shop'");
          if (rows[0]!.n !== TABLES.length) return false;
        }
        return true;
      }, 180_000, 200);

      // The application writes on the root up to the fence.
      const onRoot = writer(() => rootDb.connect(), rng);
      await waitFor('some writes on the root', async () => onRoot.committed > 50, 60_000);

      // The switchover, blocked in its drain by a session holding the branch's position, is killed there.
      await holder.connect();
      await holder.query("BEGIN; SELECT 1 FROM pgconvey.subscription WHERE queue_name = 'shop' AND consumer_name = 'b' FOR UPDATE");
      switchover = startCli(['switchover', file, '--to', 'b', '--reverse', '--auto-approve', '--max-lag', '1min']);
      await switchover.waitForLine(/✓ fence /, 90_000);
      await onRoot.done;
      expect(onRoot.refused).toBe(true);
      await new Promise((r) => setTimeout(r, 300)); // inside the drain, waiting on the held row
      await switchover.kill('SIGKILL');
      switchover = null;
      // Half way: both refuse writes; the branch is still a branch.
      expect(await writeError(() => rootDb.connect(), "SET default_transaction_read_only = off; INSERT INTO public.accounts VALUES (-1, 0, 'x')")).toBe('25006');
      expect(await writeError(() => bDb.connect(), "SET default_transaction_read_only = off; INSERT INTO public.accounts VALUES (-1, 0, 'x')")).toBe('25006');
      expect((await queueRow(c.b))!.provider).toBe('root');
      await holder.query('COMMIT');

      const again = await runCli(['switchover', file, '--to', 'b', '--reverse', '--auto-approve'], { timeoutMs: 180_000 });
      expect(again.code, again.stdout + again.stderr).toBe(0);
      expect(again.stdout).toContain('resuming: writes already fenced');
      expect(again.stdout).toMatch(/frozen at tick \d+/);

      // The branch's queue is a root's now, the root's frozen at the tick the branch took over from.
      const bQueue = (await queueRow(c.b))!;
      const rootQueue = (await queueRow(c.root))!;
      expect([bQueue.provider, bQueue.consumer]).toEqual([null, null]);
      expect([rootQueue.provider, rootQueue.consumer]).toEqual(['b', null]);
      expect(BigInt(bQueue.last)).toBeGreaterThanOrEqual(BigInt(rootQueue.last));
      // Everything the root committed is on the branch and the leaf.
      await expectEqual(c.root, c.b);
      await waitFor('the leaf equal to the branch after the hand-over', () => equalRows(c.b, c.l), 60_000, 200);
      expect(await writeError(() => rootDb.connect(), "SET default_transaction_read_only = off; INSERT INTO public.accounts VALUES (-1, 0, 'x')")).toBe('25006');

      // The application writes on the branch: the leaf follows it, and the old root (reverse).
      const onB = writer(() => bDb.connect(), rng);
      await waitFor('some writes on b', async () => onB.committed > 100, 60_000);
      await onB.stop();
      await waitFor('the leaf equal to b', () => equalRows(c.b, c.l), 90_000, 200);
      await waitFor('the old root equal to b', () => equalRows(c.b, c.root), 90_000, 200);
      await expectEqual(c.b, c.l);
      await expectEqual(c.b, c.root);
      // The leaf's position is a tick of b's own queue, past the one the root was frozen at.
      const lAt = await position(c.l, 'l');
      expect(BigInt(lAt!)).toBeGreaterThan(BigInt(rootQueue.last));
      expect((await c.b.query("SELECT 1 FROM pgconvey.tick t JOIN pgconvey.queue q USING (queue_id) WHERE q.queue_name = 'shop' AND t.tick_id = $1", [lAt])).rowCount).toBe(1);

      // Plan on the unchanged file says the branch took over (a warning) and changes nothing; status shows who takes writes.
      const plan = await runCli(['plan', file], { timeoutMs: 120_000 });
      expect(plan.code, plan.stdout + plan.stderr).toBe(0);
      expect(plan.stdout + plan.stderr).toMatch(/switched_over_to_branch: node "b" took over writes/);
      expect(plan.stdout).toContain('No changes');
      const status = await runCli(['status', file], { timeoutMs: 120_000 });
      expect(status.code, status.stdout + status.stderr).toBe(0);
      expect(status.stdout).toMatch(/→ b \(branch in the file; the root of its queue since the switchover\).*takes writes since/);
      expect(status.stdout).toMatch(/standby: "b" takes writes/);

      // The switch back: the root takes writes again; the branch follows it again, the leaf still under it.
      const back = await runCli(['switchover', file, '--to', 'root', '--auto-approve'], { timeoutMs: 180_000 });
      expect(back.code, back.stdout + back.stderr).toBe(0);
      expect(back.stdout).toMatch(/junction tick \d+/);
      const bAfter = (await queueRow(c.b))!;
      expect([bAfter.provider, bAfter.consumer]).toEqual(['root', 'b']);
      expect((await queueRow(c.root))!.provider).toBeNull();
      expect(await writeError(() => bDb.connect(), "SET default_transaction_read_only = off; INSERT INTO public.accounts VALUES (-1, 0, 'x')")).toBe('25006');
      await expectEqual(c.b, c.root);
      const onRootAgain = writer(() => rootDb.connect(), rng);
      await waitFor('some writes on the root again', async () => onRootAgain.committed > 100, 60_000);
      await onRootAgain.stop();
      await waitFor('b equal to the root again', () => equalRows(c.root, c.b), 90_000, 200);
      await waitFor('the leaf equal to the root again', () => equalRows(c.root, c.l), 90_000, 200);
      await expectEqual(c.root, c.b);
      await expectEqual(c.root, c.l);
      // The tick ids are the same all the way down again.
      await waitFor('b and l at the root\'s last tick', async () => {
        const last = (await queueRow(c.root))!.last;
        return (await position(c.b, 'b')) === last && (await position(c.l, 'l')) === last;
      }, 60_000, 200);
      const planBack = await runCli(['plan', file], { timeoutMs: 120_000 });
      expect(planBack.code, planBack.stdout + planBack.stderr).toBe(0);
      expect(planBack.stdout).toContain('No changes');
    } finally {
      await switchover?.kill('SIGKILL');
      await holder.end().catch(() => undefined);
      await run.kill('SIGTERM');
      for (const x of Object.values(c)) await x.end().catch(() => undefined);
    }
  });

  it('without --reverse: killed in its drain, undone with --to root (the root takes writes again, the cascade follows it); switched over again, a switch back is refused', { timeout: 600_000 }, async () => {
    const rng = createRng(testSeed() + 1);
    const rootDb = await freshDatabase(sourceServer(), 'socu_r');
    const lDb = await freshDatabase(targetServer(), 'socu_l');
    const bDb = await db16();
    const checker = async (config: pg.ClientConfig) => {
      const x = new pg.Client({ ...config, application_name: 'pgconvey:test-check' });
      await x.connect();
      return x;
    };
    const c: Record<'root' | 'b' | 'l', pg.Client> = { root: await checker(rootDb.config), b: await checker(bDb.config), l: await checker(lDb.config) };
    for (const x of Object.values(c)) await x.query(SCHEMA);
    await c.root.query(SEED);
    const file = `${mkdtempSync('/tmp/pgconvey-test-')}/cascade.yaml`;
    writeFileSync(file, yaml({ root: rootDb.dsn, b: bDb.dsn, l: lDb.dsn }));
    const applied = await runCli(['apply', file, '--auto-approve'], { timeoutMs: 180_000 });
    expect(applied.code, applied.stdout + applied.stderr).toBe(0);
    const run = startCli(['run', file, '--log-format', 'json']);
    let switchover: CliProcess | null = null;
    const holder = new pg.Client({ ...bDb.config, application_name: 'pgconvey:test-holder' });
    try {
      await waitFor('every table ok on b and l', async () => {
        for (const n of ['b', 'l'] as const) {
          const { rows } = await c[n].query<{ n: number }>("SELECT count(*) FILTER (WHERE state = 'ok')::int AS n FROM pgconvey.subscriber_table WHERE queue_name = 'shop'");
          if (rows[0]!.n !== TABLES.length) return false;
        }
        return true;
      }, 180_000, 200);
      const onRoot = writer(() => rootDb.connect(), rng);
      await waitFor('some writes on the root', async () => onRoot.committed > 50, 60_000);
      await holder.connect();
      await holder.query("BEGIN; SELECT 1 FROM pgconvey.subscription WHERE queue_name = 'shop' AND consumer_name = 'b' FOR UPDATE");
      switchover = startCli(['switchover', file, '--to', 'b', '--auto-approve', '--max-lag', '1min']);
      await switchover.waitForLine(/✓ fence /, 90_000);
      await onRoot.done;
      await new Promise((r) => setTimeout(r, 300));
      await switchover.kill('SIGKILL');
      switchover = null;
      await holder.query('COMMIT');

      const undone = await runCli(['switchover', file, '--to', 'root', '--auto-approve'], { timeoutMs: 180_000 });
      expect(undone.code, undone.stdout + undone.stderr).toBe(0);
      expect(undone.stdout).toMatch(/switchover to "b" stopped half way/);
      expect((await queueRow(c.root))!.provider).toBeNull();
      expect((await queueRow(c.b))!.provider).toBe('root');
      const again = writer(() => rootDb.connect(), rng);
      await waitFor('writes on the root again', async () => again.committed > 50, 60_000);
      await again.stop();
      await waitFor('b equal to the root', () => equalRows(c.root, c.b), 90_000, 200);
      await waitFor('l equal to the root', () => equalRows(c.root, c.l), 90_000, 200);
      await expectEqual(c.root, c.b);
      await expectEqual(c.root, c.l);

      const forward = await runCli(['switchover', file, '--to', 'b', '--auto-approve'], { timeoutMs: 180_000 });
      expect(forward.code, forward.stdout + forward.stderr).toBe(0);
      const onB = writer(() => bDb.connect(), rng);
      await waitFor('some writes on b', async () => onB.committed > 50, 60_000);
      await onB.stop();
      await waitFor('l equal to b', () => equalRows(c.b, c.l), 90_000, 200);
      await expectEqual(c.b, c.l);
      const back = await runCli(['switchover', file, '--to', 'root', '--auto-approve'], { timeoutMs: 120_000 });
      expect(back.code).toBe(1);
      expect(back.stdout + back.stderr).toMatch(/switchover_no_reverse/);
    } finally {
      await switchover?.kill('SIGKILL');
      await holder.end().catch(() => undefined);
      await run.kill('SIGTERM');
      for (const x of Object.values(c)) await x.end().catch(() => undefined);
    }
  });
});
