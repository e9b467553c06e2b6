/**
 * Issue 16's check on the example file itself: plans/cascade.yaml, read and
 * parsed, with only its three `databases:` entries replaced by local DSNs
 * (everything else as the file says: queue billing, root_dc1 → branch_dc2 →
 * reporting_dc2, its include/exclude patterns, sequences, daemons):
 *
 *   root_dc1 (the run's source server, 12) → branch_dc2 (16, started here)
 *     → reporting_dc2 (the run's target server, 17)
 *
 * The file has no `prepare:` (schema check, the default), so the test creates
 * the same tables on the three databases: a pgbench-like schema in billing,
 * public.customers, two public.invoice_* tables, billing.x_scratch (which the
 * exclude pattern must leave out) and sequences. `plan`, `apply`, `run` per
 * node; a pgbench -N-style load from 4 clients written here (seeded, seed
 * printed) with a few customers/invoices writes; the branch's run SIGKILLed
 * 4–6 times at random moments and restarted. Then every replicated table on
 * the branch and the leaf equals the root row by row (the harness's own SQL),
 * the sequences are carried, x_scratch is not replicated, and `plan` says "No
 * changes". Then the leaf is moved to the root under the load (the parsed
 * file's provider edited; `~ change_provider`), and the same checks again.
 */
import pg from 'pg';
import { readFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { startServer, type RunningServer } from '../../src/embedded/index.js';
import { caughtUp, differingFromRoot, extraServerDatabase, NodeRuns, sequencesBehindRoot, type Db } from '../harness/cascade.js';
import { runCli } from '../harness/cli.js';
import { waitFor } from '../harness/compare.js';
import { freshDatabase } from '../harness/databases.js';
import { createRng, testSeed, type Rng } from '../harness/random.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const QUEUE = 'billing';
const ROOT = 'root_dc1';
const BRANCH = 'branch_dc2';
const LEAF = 'reporting_dc2';
const SUBSCRIBERS = [BRANCH, LEAF] as const;
/** The node each of the file's databases is given to. */
const DATABASE_OF: Record<string, string> = { [ROOT]: 'dc1_primary', [BRANCH]: 'dc2_primary', [LEAF]: 'dc2_reporting' };

const ACCOUNTS = 20_000;
const TELLERS = 20;
const BRANCHES = 2;

/** The same on the three databases (the file does not ask for a schema copy). */
const SCHEMA = `
  CREATE SCHEMA billing;
  CREATE TABLE billing.branches (bid int PRIMARY KEY, bbalance int NOT NULL, filler char(88));
  CREATE TABLE billing.tellers (tid int PRIMARY KEY, bid int NOT NULL, tbalance int NOT NULL, filler char(84));
  CREATE TABLE billing.accounts (aid bigint PRIMARY KEY, bid int NOT NULL, abalance int NOT NULL, filler char(84));
  CREATE TABLE billing.history (hid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tid int NOT NULL, bid int NOT NULL, aid bigint NOT NULL, delta int NOT NULL, mtime timestamp NOT NULL, filler char(22));
  CREATE TABLE billing.x_scratch (id int PRIMARY KEY, note text);
  CREATE SEQUENCE billing.receipt_no START 1000;
  CREATE TABLE public.customers (id bigserial PRIMARY KEY, name text NOT NULL, email text, created timestamptz NOT NULL DEFAULT now());
  CREATE TABLE public.invoice_headers (id serial PRIMARY KEY, customer bigint NOT NULL, receipt bigint NOT NULL, total numeric(12,2) NOT NULL);
  CREATE TABLE public.invoice_lines (invoice int NOT NULL, line int NOT NULL, amount numeric(12,2) NOT NULL, note text, PRIMARY KEY (invoice, line));`;

const SEED = `
  INSERT INTO billing.branches SELECT g, 0, '' FROM generate_series(1, ${BRANCHES}) g;
  INSERT INTO billing.tellers SELECT g, (g - 1) % ${BRANCHES} + 1, 0, '' FROM generate_series(1, ${TELLERS}) g;
  INSERT INTO billing.accounts SELECT g, (g - 1) % ${BRANCHES} + 1, 0, '' FROM generate_series(1, ${ACCOUNTS}) g;
  INSERT INTO billing.x_scratch SELECT g, 'scratch ' || g FROM generate_series(1, 10) g;
  INSERT INTO public.customers (name, email) SELECT 'customer ' || g, CASE WHEN g % 7 = 0 THEN NULL ELSE 'c' || g || '@example.com' END FROM generate_series(1, 200) g;
  INSERT INTO public.invoice_headers (customer, receipt, total) SELECT g % 200 + 1, nextval('billing.receipt_no'), g * 1.25 FROM generate_series(1, 100) g;
  INSERT INTO public.invoice_lines SELECT h, l, h * 0.5 + l, NULL FROM generate_series(1, 100) h, generate_series(1, 3) l;`;

/** Every table the file's patterns select (billing.* but billing.*_scratch, public.customers, public.invoice_*). */
const REPLICATED = ['billing.branches', 'billing.tellers', 'billing.accounts', 'billing.history', 'public.customers', 'public.invoice_headers', 'public.invoice_lines'];

/** plans/cascade.yaml, parsed, with its databases pointed at `dsn` (by node); `leafProvider` edits reporting_dc2's provider. */
function cascadeFile(dsn: Record<string, string>, leafProvider?: string): string {
  const doc = parseDocument(readFileSync('plans/cascade.yaml', 'utf8'));
  expect(doc.errors).toEqual([]);
  const databases = doc.get('databases') as { items: unknown[] } | undefined;
  expect(Object.keys(doc.toJS().databases).sort()).toEqual(Object.values(DATABASE_OF).sort());
  expect(databases?.items).toHaveLength(3);
  for (const [node, database] of Object.entries(DATABASE_OF)) doc.setIn(['databases', database], dsn[node]);
  if (leafProvider) doc.setIn(['queues', QUEUE, 'nodes', LEAF, 'provider'], leafProvider);
  return doc.toString();
}

/**
 * pgbench -N-style load on the root, 4 clients: UPDATE a random account, SELECT it, INSERT a history row
 * (5% rolled back); now and then, in their own transactions, a customer inserted or updated, an invoice with
 * lines (a receipt number from billing.receipt_no), a line changed or deleted, and a scratch row written.
 */
function pgbenchLoad(db: Db, seed: number, clients = 4): { transactions: () => number; stop: () => Promise<number> } {
  let running = true;
  let transactions = 0;
  const client = async (rng: Rng) => {
    const c = await db.connect();
    try {
      while (running) {
        const aid = rng.int(1, ACCOUNTS);
        const tid = rng.int(1, TELLERS);
        const delta = rng.int(-5000, 5000);
        await c.query('BEGIN');
        await c.query('UPDATE billing.accounts SET abalance = abalance + $1 WHERE aid = $2', [delta, aid]);
        await c.query('SELECT abalance FROM billing.accounts WHERE aid = $1', [aid]);
        await c.query('INSERT INTO billing.history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)', [tid, (tid - 1) % BRANCHES + 1, aid, delta]);
        await c.query(rng.chance(0.05) ? 'ROLLBACK' : 'COMMIT');
        transactions++;
        if (rng.chance(0.15)) {
          switch (rng.int(0, 5)) {
            case 0:
              await c.query('INSERT INTO public.customers (name, email) VALUES ($1, $2)', [`new ${rng.int(0, 1e6)}`, rng.chance(0.3) ? null : `n${rng.int(0, 999)}@example.com`]);
              break;
            case 1:
              await c.query('UPDATE public.customers SET email = $2 WHERE id = $1', [rng.int(1, 250), rng.chance(0.2) ? null : `u${rng.int(0, 999)}@example.com`]);
              break;
            case 2:
              await c.query('BEGIN');
              {
                const id = (await c.query<{ id: number }>("INSERT INTO public.invoice_headers (customer, receipt, total) VALUES ($1, nextval('billing.receipt_no'), 0) RETURNING id", [rng.int(1, 200)])).rows[0]!.id;
                await c.query("INSERT INTO public.invoice_lines SELECT $1, l, round((random() * 100)::numeric, 2), 'line ' || l FROM generate_series(1, $2) l", [id, rng.int(1, 4)]);
                await c.query('UPDATE public.invoice_headers SET total = (SELECT sum(amount) FROM public.invoice_lines WHERE invoice = $1) WHERE id = $1', [id]);
              }
              await c.query(rng.chance(0.1) ? 'ROLLBACK' : 'COMMIT');
              break;
            case 3:
              await c.query('UPDATE public.invoice_lines SET amount = amount + 1, note = $3 WHERE invoice = $1 AND line = $2', [rng.int(1, 100), rng.int(1, 3), `changed ${rng.int(0, 99)}`]);
              break;
            case 4:
              await c.query('DELETE FROM public.invoice_lines WHERE invoice = $1 AND line = $2', [rng.int(1, 100), rng.int(1, 3)]);
              break;
            default:
              await c.query('INSERT INTO billing.x_scratch VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET note = EXCLUDED.note', [rng.int(1, 200), `w${rng.int(0, 99)}`]);
          }
        }
        await new Promise((r) => setTimeout(r, rng.int(0, 8)));
      }
    } finally {
      await c.end();
    }
  };
  const done = Promise.all(Array.from({ length: clients }, (_, i) => client(createRng(seed * 31 + i + 1))));
  return {
    transactions: () => transactions,
    stop: async () => {
      running = false;
      await done;
      return transactions;
    },
  };
}

let pg16: RunningServer | undefined;

beforeAll(async () => {
  pg16 = await startServer({ major: 16 });
}, 120_000);
afterAll(async () => {
  await pg16?.stop();
});

describe('pgconvey: plans/cascade.yaml on three local servers', () => {
  it('plan, apply, run per node; a pgbench load on the root arrives identically on the branch and the leaf through SIGKILLs of the branch; the leaf moved to the root under the load stays identical', { timeout: 600_000 }, async () => {
    const seed = testSeed();
    const rng = createRng(seed);
    process.stderr.write(`[cli-cascade-file] seed ${seed} (PGCONVEY_SEED=${seed} replays it)\n`);
    const dbs: Record<string, Db> = {
      [ROOT]: await freshDatabase(sourceServer(), 'casf_root'),
      [BRANCH]: await extraServerDatabase(pg16!, 'casf_branch'),
      [LEAF]: await freshDatabase(targetServer(), 'casf_leaf'),
    };
    const clients = new Map<string, pg.Client>();
    for (const [node, d] of Object.entries(dbs)) {
      const c = await d.connect();
      clients.set(node, c);
      await c.query(SCHEMA);
    }
    const root = clients.get(ROOT)!;
    await root.query(SEED);
    const dsn = Object.fromEntries(Object.entries(dbs).map(([k, d]) => [k, d.dsn]));
    const file = `${mkdtempSync('/tmp/pgconvey-test-')}/cascade.yaml`;
    writeFileSync(file, cascadeFile(dsn));

    const runs = new NodeRuns(file);
    let load: ReturnType<typeof pgbenchLoad> | undefined;
    const completedTick = async (n: string) => (await clients.get(n)!.query<{ t: string | null }>('SELECT completed_tick::text AS t FROM pgconvey.subscription WHERE queue_name = $1', [QUEUE])).rows[0]?.t ?? null;
    const allCaughtUp = (what: string) => caughtUp(what, root, clients, SUBSCRIBERS, { queue: QUEUE, runs });
    /** Every replicated table equal to the root's row by row, sequences carried, x_scratch left out, plan says No changes. */
    const identical = async (what: string) => {
      expect(await differingFromRoot(root, clients, SUBSCRIBERS, REPLICATED), what).toEqual([]);
      expect(await sequencesBehindRoot(root, clients, SUBSCRIBERS, ['billing', 'public']), what).toEqual([]);
      for (const n of SUBSCRIBERS) {
        const c = clients.get(n)!;
        expect((await c.query<{ n: number }>('SELECT count(*)::int AS n FROM billing.x_scratch')).rows[0]!.n, `${what}: ${n}'s billing.x_scratch`).toBe(0);
        const listed = (await c.query<{ t: string }>("SELECT table_schema || '.' || table_name AS t FROM pgconvey.subscriber_table WHERE queue_name = $1 ORDER BY 1", [QUEUE])).rows.map((r) => r.t);
        expect(listed, `${what}: ${n}'s replicated tables`).toEqual([...REPLICATED].sort());
      }
      const again = await runCli(['plan', file], { timeoutMs: 120_000 });
      expect(again.code, again.stdout + again.stderr).toBe(0);
      expect(again.stdout, what).toContain('No changes');
    };

    try {
      const planned = await runCli(['plan', file], { timeoutMs: 120_000 });
      expect(planned.code, planned.stdout + planned.stderr).toBe(0);
      for (const database of Object.values(DATABASE_OF)) expect(planned.stdout).toContain(`# database ${database}`);
      expect(planned.stdout).toMatch(new RegExp(`create_branch_queue ${QUEUE}`));
      // The subscribers by node in the reasons (the root's actions are under its database); every node in --json.
      for (const n of SUBSCRIBERS) expect(planned.stdout).toContain(`node "${n}"`);
      expect(planned.stdout).not.toMatch(/x_scratch/);
      const asJson = JSON.parse((await runCli(['plan', file, '--json'], { timeoutMs: 120_000 })).stdout) as { actions: Array<{ node: string | null }> };
      // (engine actions are per database: `db:<database>`)
      expect(new Set(asJson.actions.map((a) => a.node).filter((n) => n && !n.startsWith('db:')))).toEqual(new Set([ROOT, BRANCH, LEAF]));
      const applied = await runCli(['apply', file, '--auto-approve'], { timeoutMs: 180_000 });
      expect(applied.code, applied.stdout + applied.stderr).toBe(0);
      // The exclude pattern leaves billing.x_scratch without capture (the test created no trigger of its own).
      expect((await root.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_catalog.pg_trigger WHERE tgrelid = 'billing.x_scratch'::regclass")).rows[0]!.n).toBe(0);

      // 1. The load, and SIGKILLs of the branch's run at random moments (from the initial copies on).
      const started = Date.now();
      load = pgbenchLoad(dbs[ROOT]!, seed);
      for (const n of [ROOT, BRANCH, LEAF]) runs.start(n);
      const kills = rng.int(4, 6);
      for (let k = 0; k < kills; k++) {
        await new Promise((r) => setTimeout(r, rng.int(300, 2500)));
        await runs.stop(BRANCH, 'SIGKILL');
        await new Promise((r) => setTimeout(r, rng.int(0, 500)));
        runs.start(BRANCH);
      }
      const before = load.transactions();
      await waitFor('200 more load transactions after the kills', async () => load!.transactions() >= before + 200, 120_000, 50);
      const written = await load.stop();
      load = undefined;
      expect(written).toBeGreaterThan(200);
      let waited = Date.now();
      await allCaughtUp(`after the load and ${kills} SIGKILLs of ${BRANCH}`);
      process.stderr.write(`[cli-cascade-file] ${written} load transactions, ${kills} SIGKILLs of ${BRANCH}; caught up ${Date.now() - waited} ms after the load stopped (${Date.now() - started} ms since the load started)\n`);
      await identical('after the kills');

      // 2. The leaf moved to the root under the load: its run stopped, the parsed file edited, plan, apply, restart.
      load = pgbenchLoad(dbs[ROOT]!, seed + 1);
      const moveFrom = load.transactions();
      await waitFor('100 load transactions before the move', async () => load!.transactions() >= moveFrom + 100, 60_000, 50);
      await runs.stop(LEAF);
      writeFileSync(file, cascadeFile(dsn, ROOT));
      const movePlan = await runCli(['plan', file], { timeoutMs: 120_000 });
      expect(movePlan.code, movePlan.stdout + movePlan.stderr).toBe(0);
      expect(movePlan.stdout).toMatch(new RegExp(`~ change_provider ${ROOT}\\s`));
      const moved = await runCli(['apply', file, '--auto-approve'], { timeoutMs: 180_000 });
      expect(moved.code, moved.stdout + moved.stderr).toBe(0);
      const movedAt = await completedTick(LEAF);
      runs.start(LEAF);
      // The leaf applies batches of the root under the load, then the load goes on a while.
      await waitFor(`${LEAF} past tick ${movedAt} from ${ROOT}`, async () => BigInt((await completedTick(LEAF)) ?? 0) > BigInt(movedAt ?? 0), 120_000, 100);
      const afterMove = load.transactions();
      await waitFor('300 load transactions after the move', async () => load!.transactions() >= afterMove + 300, 120_000, 50);
      const more = await load.stop();
      load = undefined;
      waited = Date.now();
      await allCaughtUp('after the move and the load');
      process.stderr.write(`[cli-cascade-file] ${more} load transactions around the move; caught up ${Date.now() - waited} ms after the load stopped\n`);
      // The leaf reads from the root now: its consumer is on the root's queue, no longer on the branch's.
      const consumerOf = async (n: string) => (await clients.get(n)!.query('SELECT 1 FROM pgconvey.consumer c JOIN pgconvey.queue q USING (queue_id) WHERE q.queue_name = $1 AND c.consumer_name = $2', [QUEUE, LEAF])).rowCount;
      expect(await consumerOf(ROOT)).toBe(1);
      expect(await consumerOf(BRANCH)).toBe(0);
      await identical('after the move');
      for (const [n, p] of runs.runs) {
        const errors = p.lines.filter((l) => /"level":"(error|warn)"/.test(l));
        if (errors.length) process.stderr.write(`[cli-cascade-file] ${n}: ${errors.length} error/warn lines, e.g. ${errors.slice(0, 3).join(' | ').slice(0, 900)}\n`);
      }
    } finally {
      await load?.stop().catch(() => undefined);
      await runs.stopAll();
      await Promise.all([...clients.values()].map((c) => c.end().catch(() => undefined)));
    }
  });
});
