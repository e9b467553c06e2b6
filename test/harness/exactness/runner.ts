/**
 * Runs one exactness scenario against a pair of real servers: fresh
 * databases, the scenario's schema on both, the engine's public API to
 * capture, subscribe and copy (copyPendingTables, started while writers
 * run), the timeline played on one connection per writer with ticks,
 * ApplyWorker steps and restarts in between; then settles (tick, apply until
 * idle with every table `ok`) and compares every table with comparer.ts.
 * Returns the first failure: a table that differs, a worker that stalls, a
 * copy that fails.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import * as engine from '../../../src/engine/index.js';
import { compareTable, describeComparison } from './comparer.js';
import { preludeFor } from './schema.js';
import type { Scenario } from './scenario.js';
import type { Environment } from './types.js';
import { settingsSql } from './workload.js';

export interface ServerRef {
  major: number;
  host: string;
  port: number;
  user: string;
}

export interface Failure {
  kind: 'diff' | 'stall' | 'copy' | 'setup' | 'generator' | 'blocked';
  /** Tables that differ (diff), in order. */
  tables: string[];
  /** Normalised message for comparing failures while shrinking. */
  code: string;
  message: string;
}

export interface RunResult {
  failure: Failure | null;
  committed: number;
  rolledBack: number;
  /** Statements of the workload that failed (generator bugs in a full run; expected while shrinking). */
  statementErrors: string[];
  /** Errors of worker steps during the run (a stall shows as failure at the end). */
  workerErrors: string[];
  rowsCompared: number;
  durationMs: number;
}

export interface RunOptions {
  log?: (line: string) => void;
  /** How long settling may take before the worker counts as stalled (default 60 s). */
  settleTimeoutMs?: number;
}

const QUEUE = 'xq';
const CONSUMER = 'xc';

function client(s: ServerRef, database: string): pg.Client {
  return new pg.Client({ host: s.host, port: s.port, user: s.user, database });
}

async function withAdmin<T>(s: ServerRef, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = client(s, 'postgres');
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function createDatabase(s: ServerRef, name: string): Promise<void> {
  await withAdmin(s, (c) => c.query(`CREATE DATABASE ${name} TEMPLATE template0 ENCODING 'UTF8'`));
}

async function dropDatabase(s: ServerRef, name: string): Promise<void> {
  await withAdmin(s, async (c) => {
    await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
    await c.query(`DROP DATABASE IF EXISTS ${name}`);
  }).catch(() => undefined);
}

/** The extensions of `names` that can be created on the connection's server. */
async function installable(c: pg.Client, names: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const name of names) {
    await c.query('BEGIN');
    try {
      await c.query(`CREATE EXTENSION IF NOT EXISTS ${name}`);
      out.push(name);
    } catch {
      // not installable here
    } finally {
      await c.query('ROLLBACK');
    }
  }
  return out;
}

/** What both servers offer: majors, shared collations and extensions. */
export async function detectEnvironment(source: ServerRef, target: ServerRef): Promise<Environment> {
  const candidates = ['C', 'POSIX', 'ucs_basic', 'und-x-icu', 'de-x-icu', 'sv-x-icu', 'en_US', 'en_US.utf8', 'de_DE.utf8', 'C.utf8'];
  const probe = (s: ServerRef) =>
    withAdmin(s, async (c) => ({
      collations: (await c.query<{ n: string }>("SELECT collname AS n FROM pg_collation WHERE collname = ANY($1) AND collencoding IN (-1, 6)", [candidates])).rows.map((r) => r.n),
      // Tried one by one in a rolled-back transaction: pg_available_extensions reads every control file, and the
      // PG 10 package ships one (jsonb_plperl) with a parameter 10 does not know, which makes it fail.
      extensions: await installable(c, ['citext', 'hstore', 'ltree']),
    }));
  const [a, b] = await Promise.all([probe(source), probe(target)]);
  return {
    sourceMajor: source.major,
    targetMajor: target.major,
    collations: candidates.filter((c) => a.collations.includes(c) && b.collations.includes(c)),
    extensions: a.extensions.filter((e) => b.extensions.includes(e)).sort(),
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const message = (e: unknown) => (e instanceof Error ? e.message : String(e));
/** A message without its variable parts (numbers, quoted values), to tell failures apart. */
const normalise = (m: string) => m.replace(/"[^"]*"/g, '"…"').replace(/\([^)]*\)/g, '(…)').replace(/\d+/g, 'N').slice(0, 120);

class Writer {
  chain: Promise<void> = Promise.resolve();
  failed = false;
  constructor(readonly c: pg.Client) {}
  run(fn: () => Promise<void>): Promise<void> {
    this.chain = this.chain.then(fn);
    return this.chain;
  }
}

export async function runScenario(s: Scenario, source: ServerRef, target: ServerRef, opts: RunOptions = {}): Promise<RunResult> {
  const started = Date.now();
  const log = opts.log ?? (() => undefined);
  const tag = randomBytes(4).toString('hex');
  const pdb = `exr_p_${tag}`;
  const sdb = `exr_s_${tag}`;
  const result: RunResult = { failure: null, committed: 0, rolledBack: 0, statementErrors: [], workerErrors: [], rowsCompared: 0, durationMs: 0 };
  const clients: pg.Client[] = [];
  const open = async (srv: ServerRef, db: string) => {
    const c = client(srv, db);
    c.on('error', () => undefined);
    clients.push(c);
    await c.connect();
    return c;
  };
  await Promise.all([createDatabase(source, pdb), createDatabase(target, sdb)]);
  try {
    const admin = await open(source, pdb);
    const sub = await open(target, sdb);
    // Schema on both sides.
    const ddl = [...preludeFor(s.tables), ...s.tables.flatMap((t) => t.ddl)];
    for (const c of [admin, sub]) {
      for (const stmt of ddl) {
        try {
          await c.query(stmt);
        } catch (e) {
          result.failure = { kind: 'setup', tables: [], code: normalise(message(e)), message: `schema statement failed on ${c === admin ? 'the provider' : 'the subscriber'}: ${message(e)}\n${stmt}` };
          return result;
        }
      }
    }
    await engine.installEngine(admin);
    await engine.installEngine(sub);
    await engine.createQueue(admin, QUEUE);
    for (const t of s.tables) {
      try {
        await engine.addTable(admin, QUEUE, 'public', t.name);
      } catch (e) {
        result.failure = { kind: 'setup', tables: [t.name], code: normalise(message(e)), message: `add_table refused public.${t.name}: ${message(e)}` };
        return result;
      }
    }
    await engine.subscribe(admin, sub, QUEUE, CONSUMER);
    for (const t of s.tables) await engine.addSubscriberTable(sub, QUEUE, CONSUMER, 'public', t.name, 'pending');

    const writers: Writer[] = [];
    for (let w = 0; w < s.writers; w++) writers.push(new Writer(await open(source, pdb)));
    let worker!: engine.ApplyWorker;
    let workerClients: pg.Client[] = [];
    const startWorker = async () => {
      // A restart: the old worker's connections end (its lock with them), as when the process dies.
      await Promise.all(workerClients.map((c) => c.end().catch(() => undefined)));
      workerClients = [await open(source, pdb), await open(target, sdb)];
      worker = new engine.ApplyWorker(workerClients[0]!, workerClients[1]!, { queue: QUEUE, consumer: CONSUMER });
      await worker.start();
    };
    await startWorker();
    let workerBusy: Promise<void> | null = null;
    const step = () => {
      if (workerBusy) return;
      workerBusy = worker
        .step()
        .then(
          () => undefined,
          (e) => void result.workerErrors.push(message(e)),
        )
        .finally(() => (workerBusy = null));
    };
    let copy: Promise<unknown> | null = null;
    let copyError: unknown = null;
    const startCopy = () => {
      copy ??= engine
        .copyPendingTables(() => open(source, pdb), () => open(target, sdb), QUEUE, CONSUMER, { parallel: 2 })
        .catch((e) => {
          copyError = e;
        });
    };

    const byId = new Map(s.txns.map((t) => [t.id, t]));
    let blocked = 0;
    for (const e of s.timeline) {
      if (!('txn' in e)) {
        if (e.kind === 'tick') await engine.forceTick(admin, QUEUE);
        else if (e.kind === 'step') step();
        else if (e.kind === 'copy') startCopy();
        else if (e.kind === 'restart') {
          await workerBusy;
          await startWorker();
        }
        if (workerBusy) await Promise.race([workerBusy, sleep(200)]);
        continue;
      }
      const txn = byId.get(e.txn)!;
      const w = writers[txn.writer]!;
      let p: Promise<void>;
      if (e.kind === 'begin') {
        p = w.run(async () => {
          w.failed = false;
          await w.c.query(`${settingsSql(txn.settings)}; BEGIN`);
        });
      } else if (e.kind === 'item') {
        const item = txn.items[e.index];
        if (!item) continue;
        p = w.run(async () => {
          if (w.failed) return;
          try {
            await w.c.query(item.sql);
          } catch (err) {
            w.failed = true;
            result.statementErrors.push(`txn ${txn.id} (w${txn.writer}): ${message(err)}\n    ${item.sql.slice(0, 300)}`);
          }
        });
      } else {
        p = w.run(async () => {
          const commit = txn.end === 'commit' && !w.failed;
          await w.c.query(commit ? 'COMMIT' : 'ROLLBACK');
          if (commit) result.committed++;
          else result.rolledBack++;
        });
      }
      // A writer waiting on a lock (the copy's, say) must not hold up the others.
      const done = await Promise.race([p.then(() => true), sleep(2000).then(() => false)]);
      if (!done) blocked++;
    }
    const allWriters = Promise.all(writers.map((w) => w.chain));
    if (!(await Promise.race([allWriters.then(() => true), sleep(60_000).then(() => false)]))) {
      result.failure = { kind: 'blocked', tables: [], code: 'writers blocked', message: 'writers still waiting 60 s after the end of the timeline (a lock the engine holds?)' };
      return result;
    }
    startCopy();
    await copy;
    if (copyError) {
      result.failure = { kind: 'copy', tables: [], code: normalise(message(copyError)), message: `the initial copy failed: ${message(copyError)}` };
      return result;
    }
    log(`timeline done: ${result.committed} commits, ${result.rolledBack} rollbacks, ${blocked} waits, ${result.workerErrors.length} worker errors`);

    // Settle: tick and apply until idle with every table ok; a step failing the same way 3 times is a stall.
    const deadline = Date.now() + (opts.settleTimeoutMs ?? 60_000);
    let last = '';
    let repeats = 0;
    for (;;) {
      await workerBusy;
      const tick = await engine.forceTick(admin, QUEUE);
      let stalled: string | null = null;
      for (let i = 0; i < 200; i++) {
        try {
          if ((await worker.step()).kind === 'idle') break;
        } catch (err) {
          const m = message(err);
          repeats = m === last ? repeats + 1 : 1;
          last = m;
          if (repeats >= 3) stalled = m;
          break;
        }
      }
      if (stalled) {
        result.failure = { kind: 'stall', tables: [], code: normalise(stalled), message: `the apply worker stalls, failing every retry with: ${stalled}` };
        return result;
      }
      const st = await sub.query<{ done: boolean; busy: string }>(
        "SELECT completed_tick >= $3 AS done, (SELECT string_agg(table_name || '=' || state, ', ') FROM pgconvey.subscriber_table WHERE state <> 'ok') AS busy FROM pgconvey.subscription WHERE queue_name = $1 AND consumer_name = $2",
        [QUEUE, CONSUMER, tick],
      );
      if (st.rows[0]?.done && !st.rows[0].busy) break;
      if (Date.now() > deadline) {
        result.failure = { kind: 'stall', tables: [], code: 'settle timeout', message: `not settled after ${opts.settleTimeoutMs ?? 60_000} ms: tables not ok: ${st.rows[0]?.busy ?? '?'}; last worker error: ${last || 'none'}` };
        return result;
      }
      await sleep(20);
    }

    // Compare.
    const reports: string[] = [];
    const differing: string[] = [];
    for (const t of s.tables) {
      const c = await compareTable(admin, sub, t.name, t.key);
      result.rowsCompared += c.providerRows;
      if (c.differing) {
        differing.push(t.name);
        reports.push(describeComparison(c));
      }
    }
    if (differing.length) result.failure = { kind: 'diff', tables: differing, code: `diff ${differing[0]}`, message: reports.join('\n') };
    return result;
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    await Promise.all([dropDatabase(source, pdb), dropDatabase(target, sdb)]);
    result.durationMs = Date.now() - started;
  }
}

/** Whether a failure of a smaller scenario is "the same" as the original one. */
export function sameFailure(original: Failure, candidate: Failure | null): boolean {
  if (!candidate || candidate.kind !== original.kind) return false;
  if (original.kind === 'diff') return candidate.tables.includes(original.tables[0]!);
  return candidate.code === original.code;
}
