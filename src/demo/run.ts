/**
 * The embedded demo (`npm run demo`): two local servers of different majors,
 * a small shop database under a steady writer, and the whole loop — validate,
 * plan (which flags a table without a key), apply, run, status, compare, and
 * a switchover with reverse replication while the writer moves over — with a
 * short summary of what it measured. Cleans up after itself.
 *
 * Must not be imported by any other module.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { introspectDatabases } from '../catalog/index.js';
import { loadDesiredState, type DesiredState } from '../config/index.js';
import { createLogger, runDesiredState } from '../daemons/index.js';
import { startServer, type RunningServer } from '../embedded/index.js';
import { ENGINE_CONTENT, ENGINE_VERSION } from '../engine/index.js';
import { connectionsOf, executePlan } from '../executor/index.js';
import { SWITCHOVER_DEFAULTS, collectStatus, compareState, switchover } from '../operations/index.js';
import { buildPlan } from '../planner/index.js';
import { renderCompareHuman, renderDiagnostics, renderEndedSessions, renderPlanHuman, renderStatusHuman, renderSwitchoverStep, renderSwitchoverSummary } from '../render/index.js';

const SOURCE_MAJOR = Number(process.env.PGCONVEY_DEMO_SOURCE ?? 12);
const TARGET_MAJOR = Number(process.env.PGCONVEY_DEMO_TARGET ?? 17);

const SCHEMA = `
  CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE);
  CREATE TABLE products (id serial PRIMARY KEY, title text NOT NULL, price numeric(10,2) NOT NULL);
  CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers, placed_at timestamptz NOT NULL DEFAULT now());
  CREATE TABLE order_items (order_id bigint REFERENCES orders ON DELETE CASCADE, line int, product_id int NOT NULL REFERENCES products, qty int NOT NULL, PRIMARY KEY (order_id, line));
  CREATE TABLE audit_log (event_id bigint NOT NULL, happened_at timestamptz NOT NULL DEFAULT now(), what text);
`;
const DATA = `
  INSERT INTO customers (name, email) SELECT 'customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 2000) g;
  INSERT INTO products (title, price) SELECT 'product ' || g, (g % 97) + 0.99 FROM generate_series(1, 300) g;
  INSERT INTO orders (customer_id) SELECT 1 + g % 2000 FROM generate_series(1, 20000) g;
  INSERT INTO order_items SELECT o, l, 1 + (o * l) % 300, 1 + l FROM generate_series(1, 20000) o, generate_series(1, 3) l;
  INSERT INTO audit_log (event_id, what) SELECT g, 'seeded' FROM generate_series(1, 5000) g;
`;

function yamlFor(source: RunningServer, target: RunningServer, withKey: boolean): string {
  return `version: 1
databases:
  old: "host=${source.host} port=${source.port} user=postgres dbname=shop"
  new: "host=${target.host} port=${target.port} user=postgres dbname=shop"
queues:
  shop:
    nodes:
      old_root: { database: old, type: root }
      new_leaf: { database: new, type: leaf, provider: old_root }
    tables:
      include: ["public.*"]${withKey ? '\n      entries:\n        public.audit_log: { key: [event_id] }' : ''}
    sequences:
      include: ["public.*"]
daemons:
  ticker: { max_lag: 100ms }
`;
}

const say = (text: string) => process.stdout.write(`${text}\n`);
const step = (text: string) => say(`\n== ${text}`);

async function sql(server: RunningServer, db: string, text: string): Promise<pg.QueryResult> {
  const c = new pg.Client({ host: server.host, port: server.port, user: 'postgres', database: db });
  await c.connect();
  try {
    return await c.query(text);
  } finally {
    await c.end();
  }
}

/** Waits until `check` holds, polling; fails naming `what` after `timeoutMs`. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs: number, everyMs: number): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !(await check()); ) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

async function load(file: string): Promise<DesiredState> {
  const r = await loadDesiredState(file);
  if (!r.state) throw new Error(renderDiagnostics(r.diagnostics));
  return r.state;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'pgconvey-demo-'));
  step(`starting PostgreSQL ${SOURCE_MAJOR} (old) and ${TARGET_MAJOR} (new) on local ports`);
  const [source, target] = await Promise.all([startServer({ major: SOURCE_MAJOR }), startServer({ major: TARGET_MAJOR })]);
  const stopAll = new AbortController();
  let writer: Promise<void> | undefined;
  try {
    say(`old: PostgreSQL ${source.version} on :${source.port}   new: PostgreSQL ${target.version} on :${target.port}`);
    await sql(source, 'postgres', 'CREATE DATABASE shop');
    await sql(target, 'postgres', 'CREATE DATABASE shop');
    await sql(source, 'shop', SCHEMA + DATA);
    await sql(target, 'shop', SCHEMA);
    say('a shop database (customers, products, orders, order_items, audit_log) with 87,300 rows on old; the same tables, empty, on new');

    step('a steady writer places orders on old (about 50 per second), and moves to new when old stops taking writes');
    const app = { target: source, switched: false, written: 0, lastOnOld: 0, firstOnNew: 0, refusedOnOld: 0 };
    writer = (async () => {
      let c: pg.Client | undefined;
      let on: RunningServer | undefined;
      while (!stopAll.signal.aborted) {
        try {
          if (!c || on !== app.target) {
            await c?.end().catch(() => undefined);
            on = app.target;
            c = new pg.Client({ host: on.host, port: on.port, user: 'postgres', database: 'shop' });
            c.on('error', () => undefined);
            await c.connect();
          }
          await c.query(
            "WITH o AS (INSERT INTO orders (customer_id) VALUES (1 + (random() * 1999)::int) RETURNING id) INSERT INTO order_items SELECT o.id, 1, 1 + (random() * 299)::int, 1 FROM o; INSERT INTO audit_log (event_id, what) SELECT coalesce(max(event_id), 0) + 1, 'order' FROM audit_log",
          );
          app.written++;
          if (on === source) app.lastOnOld = Date.now();
          else if (!app.firstOnNew) app.firstOnNew = Date.now();
        } catch {
          // Fenced (read-only) or its session ended by the switchover: like an application, retry — on new once it is handed over.
          if (on === source) app.refusedOnOld++;
          await c?.end().catch(() => undefined);
          c = undefined;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      await c?.end().catch(() => undefined);
    })();

    const file = join(dir, 'shop.yaml');
    writeFileSync(file, yamlFor(source, target, false));
    step(`pgconvey validate ${file}`);
    await load(file);
    say('valid.');

    step('pgconvey plan — the table without a primary key is flagged');
    let state = await load(file);
    let plan = buildPlan({ state, catalogs: await introspectDatabases(state.databases), engineVersion: ENGINE_VERSION, engineContent: ENGINE_CONTENT });
    say(renderPlanHuman(plan, 'shop.yaml'));

    step('add `entries: public.audit_log: { key: [event_id] }` to the file, and plan again');
    writeFileSync(file, yamlFor(source, target, true));
    state = await load(file);
    plan = buildPlan({ state, catalogs: await introspectDatabases(state.databases), engineVersion: ENGINE_VERSION, engineContent: ENGINE_CONTENT });
    say(renderPlanHuman(plan, 'shop.yaml'));

    step('pgconvey apply --auto-approve');
    await executePlan(plan, connectionsOf(state.databases), { onDone: (a, ms) => say(`  ${a.id} … done (${ms} ms)`) });

    step('pgconvey run: the ticker on old; on new the worker copying and applying');
    const running = new AbortController();
    const log = createLogger({ level: 'warn' });
    const copyStarted = Date.now();
    const daemon = runDesiredState({ state, log, signal: running.signal, discoverEveryMs: 500 });
    try {
      let shown = false;
      for (const deadline = Date.now() + 120_000; ; ) {
        const report = await collectStatus(state);
        const tables = report.queues[0]!.subscribers[0]!.tables;
        if (!shown && tables.some((t) => t.state === 'copying')) {
          step('pgconvey status (during the copy)');
          say(renderStatusHuman(report));
          shown = true;
        }
        if (tables.length && tables.every((t) => t.state === 'ok')) break;
        if (Date.now() > deadline) throw new Error(`tables did not finish copying: ${JSON.stringify(tables)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const copyMs = Date.now() - copyStarted;
      say(`\nall 5 tables copied and merged in ${(copyMs / 1000).toFixed(1)} s while the writer kept writing`);

      step('replicating: lag of a probe row under the writer');
      await sql(source, 'shop', "INSERT INTO customers (name, email) VALUES ('probe', 'probe@example.com')");
      const sent = Date.now();
      await until('the probe row to arrive on new', async () => (await sql(target, 'shop', "SELECT 1 FROM customers WHERE email = 'probe@example.com'")).rowCount === 1, 30_000, 5);
      const lagMs = Date.now() - sent;
      say(`the probe row arrived after ${lagMs} ms`);

      step('pgconvey status');
      say(renderStatusHuman(await collectStatus(state)));

      step('pgconvey compare — counts and checksums by key range, both sides at the same queue position, under the writer');
      const compared = await compareState(state);
      say(renderCompareHuman(compared));
      const comparedRows = compared.tables.reduce((n, t) => n + (t.providerRows ?? 0), 0);
      if (!compared.tables.every((t) => t.equal)) throw new Error('compare found a difference');

      step('pgconvey switchover --to new_leaf --reverse — fence old, drain, sequences, verify, replicate back');
      const report = await switchover(state, { to: 'new_leaf', reverse: true, ...SWITCHOVER_DEFAULTS }, { onStep: (st) => say(renderSwitchoverStep(st)) });
      app.target = target;
      say(renderEndedSessions(report.endedSessions));
      say(renderSwitchoverSummary(report));
      await until('the writer to write on new', async () => app.firstOnNew > 0, 30_000, 5);
      const appGapMs = app.firstOnNew - app.lastOnOld;
      say(`the writer's own view: last write on old → first write on new ${appGapMs} ms (${app.refusedOnOld} attempt(s) refused on old)`);

      step('rollback stays possible: writes on new reach old through the reverse queue that run found and started');
      await sql(target, 'shop', "INSERT INTO customers (name, email) VALUES ('probe 2', 'probe2@example.com')");
      const sent2 = Date.now();
      await until('the probe row to reach old', async () => (await sql(source, 'shop', "SELECT 1 FROM customers WHERE email = 'probe2@example.com'")).rowCount === 1, 30_000, 5);
      say(`a row written on new arrived on old after ${Date.now() - sent2} ms`);

      step('stopping the writer and verifying both sides row by row');
      stopAll.abort();
      await writer;
      writer = undefined;
      const tables = ['customers', 'products', 'orders', 'order_items', 'audit_log'];
      const checksum = async (server: RunningServer, t: string) =>
        (await sql(server, 'shop', `SELECT count(*) AS n, coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') AS h FROM ${t} x`)).rows[0] as { n: string; h: string };
      let rows = 0;
      await until('both sides to be equal', async () => {
        const results = await Promise.all(tables.map(async (t) => [await checksum(source, t), await checksum(target, t)] as const));
        rows = results.reduce((n, [a]) => n + Number(a.n), 0);
        return results.every(([a, b]) => a.n === b.n && a.h === b.h);
      }, 60_000, 200);
      const seq = async (server: RunningServer) => Number((await sql(server, 'shop', 'SELECT last_value FROM orders_id_seq')).rows[0].last_value);
      say(`equal: ${rows.toLocaleString('en-US')} rows in 5 tables, identical checksums; orders_id_seq old ${await seq(source)}, new ${await seq(target)}`);

      step('summary');
      say(
        [
          `PostgreSQL ${source.version} → ${target.version}, ${app.written} writer transactions in all:`,
          `  initial copy     ${(copyMs / 1000).toFixed(1)} s under writes`,
          `  replication lag  ${lagMs} ms (probe row)`,
          `  compare          ${comparedRows.toLocaleString('en-US')} rows equal by checksum, ${compared.tables.reduce((n, t) => n + (t.seconds ?? 0), 0).toFixed(1)} s`,
          `  switchover       writes unavailable ${report.writeUnavailableMs} ms (fence → hand-over); the writer saw ${appGapMs} ms`,
          `  verified         ${rows.toLocaleString('en-US')} rows identical on both sides after the switchover; old follows new (rollback: switchover --to old_root)`,
        ].join('\n'),
      );
    } finally {
      running.abort();
      await daemon;
    }
  } finally {
    stopAll.abort();
    await writer?.catch(() => undefined);
    await Promise.all([source.stop(), target.stop()]);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
