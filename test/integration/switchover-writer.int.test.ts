/**
 * Switchover under a realistic application (issue 11, finding 1): three
 * tables tied by foreign keys, a fast writer and a slow one that holds each
 * transaction for seconds; the application moves to the other node at its
 * FIRST SQLSTATE 25006 and back at the next, and keeps writing throughout
 * `switchover --reverse` and the switch back, several rounds, with `pgconvey
 * run` doing the replication. It logs every write it saw committed (id and
 * payload); at the end each is checked on both nodes, row by row, and the
 * window pgconvey printed is compared with the gap the fast writer saw.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli.js';
import { waitFor } from '../harness/compare.js';
import { freshDatabase, type TestDatabase } from '../harness/databases.js';
import { writeTwoNodeFile } from '../harness/desired-file.js';
import { startCli } from '../harness/processes.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const SCHEMA = `
  CREATE TABLE public.accounts (id bigserial PRIMARY KEY, name text NOT NULL);
  CREATE TABLE public.orders (id bigserial PRIMARY KEY, account_id bigint NOT NULL REFERENCES public.accounts, note text NOT NULL);
  CREATE TABLE public.order_lines (id bigserial PRIMARY KEY, order_id bigint NOT NULL REFERENCES public.orders ON DELETE CASCADE,
                                   qty int NOT NULL, payload text NOT NULL);`;
const ROUNDS = Number(process.env.PGTEST_SWITCHOVER_ROUNDS ?? 2);

type Side = 'old' | 'new';

/** The application: one current node, which it leaves at the first refusal (25006) it gets from it. */
class Application {
  target: Side = 'old';
  /** `table:id` → the payload of its last committed write. */
  readonly committed = new Map<string, string>();
  readonly commitsOn: Record<Side, number> = { old: 0, new: 0 };
  /** performance.now() of every commit of the fast writer. */
  readonly fastCommits: number[] = [];
  readonly otherErrors: string[] = [];
  refusals = 0;
  private stopped = false;
  private loops: Promise<void>[] = [];

  constructor(private readonly dbs: Record<Side, TestDatabase>) {}

  start(): void {
    this.loops = [this.loop('fast', 0), this.loop('slow', 3_000)];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  private async loop(name: 'fast' | 'slow', holdMs: number): Promise<void> {
    let client: pg.Client | null = null;
    let on: Side = this.target;
    const mine: string[] = [];
    let n = 0;
    while (!this.stopped) {
      try {
        if (!client || on !== this.target) {
          await client?.end().catch(() => undefined);
          client = null;
          on = this.target;
          const c = new pg.Client(this.dbs[on].config);
          c.on('error', () => undefined);
          await c.connect();
          client = c;
        }
        n++;
        const writes: Array<[string, string]> = [];
        await client.query('BEGIN');
        const accounts = [...this.committed.keys()].filter((k) => k.startsWith('accounts:'));
        let account: string;
        if (accounts.length < 5 || n % 7 === 0) {
          const payload = `${name}-a${n}`;
          account = (await client.query<{ id: string }>('INSERT INTO public.accounts (name) VALUES ($1) RETURNING id::text', [payload])).rows[0]!.id;
          writes.push([`accounts:${account}`, payload]);
        } else account = accounts[n % accounts.length]!.slice('accounts:'.length);
        const note = `${name}-o${n}`;
        const order = (await client.query<{ id: string }>('INSERT INTO public.orders (account_id, note) VALUES ($1, $2) RETURNING id::text', [account, note])).rows[0]!.id;
        writes.push([`orders:${order}`, note]);
        for (let i = 0; i < 2; i++) {
          const payload = `${name}-l${n}.${i}`;
          const line = (await client.query<{ id: string }>('INSERT INTO public.order_lines (order_id, qty, payload) VALUES ($1, $2, $3) RETURNING id::text', [order, i + 1, payload])).rows[0]!.id;
          writes.push([`order_lines:${line}`, payload]);
        }
        if (holdMs) await new Promise((r) => setTimeout(r, holdMs));
        if (mine.length) {
          const id = mine[n % mine.length]!;
          const updated = `${name}-u${n}`;
          await client.query('UPDATE public.orders SET note = $2 WHERE id = $1', [id, updated]);
          writes.push([`orders:${id}`, updated]);
        }
        await client.query('COMMIT');
        for (const [k, v] of writes) this.committed.set(k, v);
        mine.push(order);
        this.commitsOn[on]++;
        if (name === 'fast') this.fastCommits.push(performance.now());
      } catch (err) {
        const e = err as { code?: string; message?: string };
        await client?.query('ROLLBACK').catch(() => undefined);
        if (e.code === '25006') {
          // The first refusal from the node in use: move to the other one.
          this.refusals++;
          if (on === this.target) this.target = on === 'old' ? 'new' : 'old';
        } else if (e.code === '57P01' || /terminat|ECONNRESET|not queryable|Connection terminated/i.test(e.message ?? '')) {
          await client?.end().catch(() => undefined);
          client = null;
        } else {
          this.otherErrors.push(`${name} on ${on}: ${e.code}: ${e.message}`);
          await client?.end().catch(() => undefined);
          client = null;
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      if (name === 'fast') await new Promise((r) => setTimeout(r, 5));
    }
    await client?.end().catch(() => undefined);
  }

  /** The longest time between two commits of the fast writer within [from, to]. */
  gapMs(from: number, to: number): number {
    const t = this.fastCommits.filter((x) => x >= from && x <= to);
    let gap = 0;
    for (let i = 1; i < t.length; i++) gap = Math.max(gap, t[i]! - t[i - 1]!);
    return Math.round(gap);
  }
}

/** Which of `expected` (`table:id` → payload) are not on `db` with that payload. */
async function missingOn(db: TestDatabase, expected: Map<string, string>): Promise<string[]> {
  const c = await db.connect();
  try {
    const found = new Map<string, string>();
    for (const [table, column] of [['accounts', 'name'], ['orders', 'note'], ['order_lines', 'payload']] as const) {
      const { rows } = await c.query<{ id: string; v: string }>(`SELECT id::text AS id, ${column} AS v FROM public.${table}`);
      for (const r of rows) found.set(`${table}:${r.id}`, r.v);
    }
    return [...expected].filter(([k, v]) => found.get(k) !== v).map(([k, v]) => `${k}=${v} (found ${found.get(k) ?? 'nothing'})`);
  } finally {
    await c.end();
  }
}

describe('switchover under an application that moves at its first refusal', () => {
  it(`loses no committed write over ${ROUNDS} rounds of switchover --reverse and back; the printed window is the writer's gap`, { timeout: 600_000 }, async () => {
    const [old, neu] = [await freshDatabase(sourceServer(), 'sow_o'), await freshDatabase(targetServer(), 'sow_n')];
    await old.query(SCHEMA);
    await neu.query(SCHEMA);
    await old.query("INSERT INTO public.accounts (name) SELECT 'seed' || g FROM generate_series(1, 10) g");
    const file = writeTwoNodeFile({ root: 'old', leaf: 'new', sequences: ['public.*'] });
    const env = { PGCONVEY_OLD_DSN: old.dsn, PGCONVEY_NEW_DSN: neu.dsn };
    const applied = await runCli(['apply', file, '--auto-approve'], { env, timeoutMs: 60_000 });
    expect(applied.code, applied.stdout + applied.stderr).toBe(0);
    const run = startCli(['run', file], env);
    const app = new Application({ old, new: neu });
    try {
      await waitFor('every table copied', async () => {
        const { rows } = await neu.query<{ n: number }>("SELECT count(*) FILTER (WHERE state = 'ok')::int AS n FROM pgconvey.subscriber_table");
        return rows[0]!.n === 3;
      }, 60_000);
      app.start();
      await waitFor('the application to write on old', async () => app.commitsOn.old > 30, 30_000);
      for (let round = 1; round <= ROUNDS; round++) {
        for (const [to, side] of [['new', 'new'], ['old', 'old']] as const) {
          const args = ['switchover', file, '--to', to, '--auto-approve', ...(to === 'new' ? ['--reverse'] : [])];
          const started = performance.now();
          const r = await runCli(args, { env, timeoutMs: 120_000 });
          const ended = performance.now();
          expect(r.code, `round ${round} --to ${to}\n${r.stdout}${r.stderr}`).toBe(0);
          const window = Number(/Writes unavailable: (\d+) ms/.exec(r.stdout)?.[1]);
          const before = app.commitsOn[side];
          await waitFor(`the application to write on ${side}`, async () => app.target === side && app.commitsOn[side] > before + 10, 30_000);
          const gap = app.gapMs(started, ended + 2_000);
          console.log(`round ${round} --to ${to}: pgconvey's window ${window} ms, the fast writer's gap ${gap} ms\n${r.stdout}`);
          expect(Number.isFinite(window), r.stdout).toBe(true);
          // The writer cannot commit inside the window; it is back within a few retries after it.
          expect(gap).toBeLessThanOrEqual(window + 1_000);
          expect(window).toBeLessThanOrEqual(gap + 250);
        }
      }
      await app.stop();
      expect(app.otherErrors).toEqual([]);
      console.log(`application: ${app.committed.size} rows written, ${app.commitsOn.old} commits on old, ${app.commitsOn.new} on new, ${app.refusals} refusals`);
      // Forward replication carries the last writes on old to new.
      const tick = (await old.query<{ t: string }>("SELECT pgconvey.force_tick('shop')::text AS t")).rows[0]!.t;
      await waitFor('new to apply the last tick', async () => {
        const { rows } = await neu.query<{ ok: boolean }>("SELECT completed_tick >= $1::bigint AS ok FROM pgconvey.subscription WHERE queue_name = 'shop' AND consumer_name = 'new'", [tick]);
        return rows[0]?.ok === true;
      }, 60_000);
      expect(await missingOn(old, app.committed)).toEqual([]);
      expect(await missingOn(neu, app.committed)).toEqual([]);
    } finally {
      await app.stop();
      await run.kill('SIGTERM');
    }
  });
});
