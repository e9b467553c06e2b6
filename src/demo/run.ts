/**
 * The embedded demo (`npm run demo`): two local servers of different majors,
 * a small shop database under a steady writer, and the whole loop — validate,
 * plan (which flags a table without a key), apply, run the ticker and the
 * worker, wait for the copies to merge, and verify both sides row by row —
 * with a short summary of what it measured. Cleans up after itself.
 *
 * Must not be imported by any other module.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { introspectDatabases } from '../catalog/index.js';
import { loadDesiredState, type DesiredState } from '../config/index.js';
import { createLogger, runTickerDaemon, runWorkerDaemon } from '../daemons/index.js';
import { startServer, type RunningServer } from '../embedded/index.js';
import { ENGINE_VERSION, tableStatus } from '../engine/index.js';
import { executePlan } from '../executor/index.js';
import { buildPlan } from '../planner/index.js';
import { renderDiagnostics, renderPlanHuman } from '../render/index.js';

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

    step('a steady writer places orders on old (about 50 per second)');
    let written = 0;
    writer = (async () => {
      const c = new pg.Client({ host: source.host, port: source.port, user: 'postgres', database: 'shop' });
      await c.connect();
      try {
        while (!stopAll.signal.aborted) {
          await c.query(
            "WITH o AS (INSERT INTO orders (customer_id) VALUES (1 + (random() * 1999)::int) RETURNING id) INSERT INTO order_items SELECT o.id, 1, 1 + (random() * 299)::int, 1 FROM o; INSERT INTO audit_log (event_id, what) SELECT coalesce(max(event_id), 0) + 1, 'order' FROM audit_log",
          );
          written++;
          await new Promise((r) => setTimeout(r, 20));
        }
      } finally {
        await c.end();
      }
    })();

    const file = join(dir, 'shop.yaml');
    writeFileSync(file, yamlFor(source, target, false));
    step(`pgconvey validate ${file}`);
    await load(file);
    say('valid.');

    step('pgconvey plan — the table without a primary key is flagged');
    let state = await load(file);
    let plan = buildPlan({ state, catalogs: await introspectDatabases(state.databases), engineVersion: ENGINE_VERSION });
    say(renderPlanHuman(plan, 'shop.yaml'));

    step('add `entries: public.audit_log: { key: [event_id] }` to the file, and plan again');
    writeFileSync(file, yamlFor(source, target, true));
    state = await load(file);
    plan = buildPlan({ state, catalogs: await introspectDatabases(state.databases), engineVersion: ENGINE_VERSION });
    say(renderPlanHuman(plan, 'shop.yaml'));

    step('pgconvey apply --auto-approve');
    await executePlan(state, plan, { onDone: (a, ms) => say(`  ${a.id} … done (${ms} ms)`) });

    step('pgconvey run: the ticker on old, the worker copying and applying on new');
    const queue = state.queues[0]!;
    const [old, neu] = [state.databases[0]!.connection, state.databases[1]!.connection];
    const log = createLogger({ level: 'warn' });
    const copyStarted = Date.now();
    const daemons = [
      runTickerDaemon({ provider: old, queue: 'shop', log, signal: stopAll.signal }),
      runWorkerDaemon({ provider: old, subscriber: neu, queue: 'shop', consumer: 'new_leaf', copyParallel: queue.daemons.copy.parallel, log, signal: stopAll.signal }),
    ];
    const sub = new pg.Client({ host: target.host, port: target.port, user: 'postgres', database: 'shop' });
    await sub.connect();
    try {
      const deadline = Date.now() + 120_000;
      for (;;) {
        const status = await tableStatus(sub, 'shop', 'new_leaf');
        if (status.length && status.every((t) => t.state === 'ok')) break;
        if (Date.now() > deadline) throw new Error(`tables did not finish copying: ${JSON.stringify(status)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const copyMs = Date.now() - copyStarted;
      say(`all 5 tables copied and merged in ${(copyMs / 1000).toFixed(1)} s while the writer kept writing`);

      step('replicating: lag of a probe row under the writer');
      await sql(source, 'shop', "INSERT INTO customers (name, email) VALUES ('probe', 'probe@example.com')");
      const sent = Date.now();
      for (;;) {
        if ((await sub.query("SELECT 1 FROM customers WHERE email = 'probe@example.com'")).rowCount) break;
        if (Date.now() - sent > 30_000) throw new Error('the probe row did not arrive');
        await new Promise((r) => setTimeout(r, 5));
      }
      const lagMs = Date.now() - sent;
      say(`the probe row arrived after ${lagMs} ms`);

      step('stopping the writer and verifying both sides row by row');
      stopAll.abort();
      await writer;
      writer = undefined;
      await Promise.all(daemons);
      const prov = new pg.Client({ host: source.host, port: source.port, user: 'postgres', database: 'shop' });
      await prov.connect();
      // Catch up on what the writer did last, with a fresh worker pass.
      const finish = new AbortController();
      const tail = [runTickerDaemon({ provider: old, queue: 'shop', log, signal: finish.signal }), runWorkerDaemon({ provider: old, subscriber: neu, queue: 'shop', consumer: 'new_leaf', log, signal: finish.signal })];
      let rows = 0;
      try {
        const tables = ['customers', 'products', 'orders', 'order_items', 'audit_log'];
        const checksum = async (c: pg.Client, t: string) =>
          (await c.query(`SELECT count(*) AS n, coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') AS h FROM ${t} x`)).rows[0] as { n: string; h: string };
        const deadline2 = Date.now() + 60_000;
        for (;;) {
          const results: Array<readonly [{ n: string; h: string }, { n: string; h: string }]> = [];
          for (const t of tables) results.push([await checksum(prov, t), await checksum(sub, t)]);
          if (results.every(([a, b]) => a.n === b.n && a.h === b.h)) {
            rows = results.reduce((s, [a]) => s + Number(a.n), 0);
            break;
          }
          if (Date.now() > deadline2) throw new Error('the two sides did not converge');
          await new Promise((r) => setTimeout(r, 200));
        }
        const seq = async (c: pg.Client) => Number((await c.query('SELECT last_value FROM orders_id_seq')).rows[0].last_value);
        const [seqOld, seqNew] = [await seq(prov), await seq(sub)];
        say(`equal: ${rows.toLocaleString('en-US')} rows in 5 tables, identical checksums; orders_id_seq old ${seqOld}, new ${seqNew}`);
        step('summary');
        say(`PostgreSQL ${source.version} → ${target.version}: initial copy ${(copyMs / 1000).toFixed(1)} s under writes (${written} writer transactions in all), probe lag ${lagMs} ms, ${rows.toLocaleString('en-US')} rows verified.`);
        say('Next in pgconvey: switchover with fencing and rollback (see the open issues).');
      } finally {
        finish.abort();
        await Promise.all(tail);
        await prov.end();
      }
    } finally {
      await sub.end();
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
