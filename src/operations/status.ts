/**
 * Status of everything a desired-state file describes, read from the
 * databases: per queue its root (last tick, events per second, whether a
 * ticker runs), per subscriber its worker (running or not, lag in seconds and
 * events, last batch applied) and per table its state with copy progress.
 * A database that cannot be reached is reported as such, not thrown.
 * Liveness comes from the advisory locks tickers and workers hold.
 */
import type pg from 'pg';
import type { DatabaseSpec, DesiredState, NodeSpec } from '../config/index.js';
import { connect } from '../db/index.js';
import { parseSnapshot, queueStatus, snapshotSees, tableStatus, type TableStatus } from '../engine/index.js';
import { copyPinOwner, isCopyPin, quoteQualified, stalePins } from '../kernel/index.js';

export interface NodeStatusBase {
  node: string;
  database: string;
  /** `user@host:port/dbname`, never a password. */
  display: string;
  /** Why the node could not be read, when it could not. */
  error: string | null;
}

export interface RootStatus extends NodeStatusBase {
  queueExists: boolean;
  tickerRunning: boolean | null;
  lastTick: string | null;
  lastTickAgeSeconds: number | null;
  eventsSinceTick: number | null;
  /** Events per second over the last minute of ticks. */
  eventsPerSecond: number | null;
}

export interface SubscriberStatus extends NodeStatusBase {
  subscribed: boolean;
  workerRunning: boolean | null;
  /** Age of the last tick the subscriber has applied. */
  lagSeconds: number | null;
  /** Events the provider holds that the subscriber has not applied. */
  pendingEvents: number | null;
  completedTick: string | null;
  appliedAgeSeconds: number | null;
  /** The worker's last error, while it is newer than the last batch applied. */
  lastError: { message: string; ageSeconds: number } | null;
  tables: TableStatus[];
}

export interface QueueReport {
  queue: string;
  /** Replication set up by `switchover --reverse` (new → old), found in the databases rather than the file. */
  reverse: boolean;
  root: RootStatus;
  subscribers: SubscriberStatus[];
  /** Copy pins on the root that no copy needs (the worker drops them after its next batch; plan removes them). */
  stalePins?: string[];
}

export interface StatusReport {
  file: string;
  takenAt: Date;
  queues: QueueReport[];
  /** What needs attention, one sentence each; empty when all is well. */
  problems: string[];
}

/** Advisory lock class of the engine ("pgcv"), as taken by tickers and workers. */
const LOCK_HELD_SQL = `
  SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                  WHERE l.locktype = 'advisory' AND l.classid = 1885823862 AND l.objid = hashtext($1)::oid
                    AND l.objsubid = 2 AND l.granted AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())) AS held`;

const RATE_SQL = `
  SELECT (l.tick_event_seq - f.tick_event_seq)::float8 / nullif(extract(epoch FROM l.tick_time - f.tick_time), 0) AS rate,
         extract(epoch FROM clock_timestamp() - l.tick_time) AS age
    FROM pgconvey.queue q
    CROSS JOIN LATERAL (SELECT * FROM pgconvey.tick t WHERE t.queue_id = q.queue_id ORDER BY t.tick_id DESC LIMIT 1) l
    CROSS JOIN LATERAL (SELECT * FROM pgconvey.tick t WHERE t.queue_id = q.queue_id AND t.tick_time >= l.tick_time - interval '60 seconds'
                         ORDER BY t.tick_id LIMIT 1) f
   WHERE q.queue_name = $1`;

const SUBSCRIPTION_SQL = `
  SELECT completed_tick::text AS completed_tick, extract(epoch FROM clock_timestamp() - applied_at) AS applied_age,
         (to_jsonb(s) ->> 'last_error') AS last_error,
         extract(epoch FROM clock_timestamp() - (to_jsonb(s) ->> 'last_error_at')::timestamptz) AS error_age,
         (to_jsonb(s) ->> 'last_error_at')::timestamptz > coalesce(applied_at, '-infinity') AS error_is_newer
    FROM pgconvey.subscription s WHERE queue_name = $1 AND consumer_name = $2`;

async function lockHeld(client: pg.Client, key: string): Promise<boolean> {
  return (await client.query<{ held: boolean }>(LOCK_HELD_SQL, [key])).rows[0]!.held;
}

async function engineInstalled(client: pg.Client): Promise<boolean> {
  return (await client.query<{ ok: boolean }>("SELECT to_regclass('pgconvey.queue') IS NOT NULL AS ok")).rows[0]!.ok;
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/** Reads the status of every queue (or only those nodes named) of the desired state. */
export async function collectStatus(state: DesiredState, options: { node?: string } = {}): Promise<StatusReport> {
  const clients = new Map<string, Promise<pg.Client>>();
  const client = (db: DatabaseSpec) => {
    if (!clients.has(db.name)) clients.set(db.name, connect(db.connection, 'status'));
    return clients.get(db.name)!;
  };
  const dbOf = (node: NodeSpec) => state.databases.find((d) => d.name === node.database)!;
  try {
    const queues: QueueReport[] = [];
    for (const queue of state.queues) {
      const rootNode = queue.nodes.find((n) => n.type === 'root')!;
      const leaves = queue.nodes.filter((n) => n.type !== 'root' && (!options.node || n.name === options.node));
      if (options.node && rootNode.name !== options.node && !leaves.length) continue;
      const root = await readRoot(queue.name, rootNode, dbOf(rootNode), client);
      const consumers = root.error === null && root.queueExists ? await queueStatus(await client(dbOf(rootNode)), queue.name) : [];
      const subscribers: SubscriberStatus[] = [];
      for (const leaf of leaves) {
        const c = consumers.find((x) => x.consumer === leaf.name);
        subscribers.push(await readSubscriber(queue.name, leaf, dbOf(leaf), client, c ? { lagMs: c.lagMs, pending: num(c.pendingEvents) } : null));
      }
      // Pins were read (with the consumers) before the tables: see stalePins.
      const leafNames = new Set(queue.nodes.filter((n) => n.type === 'leaf').map((n) => n.name));
      const pins = consumers.map((c) => c.consumer ?? '').filter((n) => isCopyPin(n) && (!options.node || copyPinOwner(n) === options.node));
      const holders = new Map(subscribers.filter((s) => s.subscribed).map((s) => [s.node, s.tables.map((t) => ({ state: t.state, copyPin: t.copyPin ?? null, copyGeneration: t.copyGeneration ?? null }))]));
      const unread = new Set([...leafNames].filter((n) => !holders.has(n)));
      const stale = stalePins(pins, holders).filter((p) => !unread.has(copyPinOwner(p) ?? ''));
      if (root.error === null) await annotateWaits(await client(dbOf(rootNode)), queue.name, subscribers, (s) => client(dbOf(leaves.find((l) => l.name === s.node)!)));
      queues.push({ queue: queue.name, reverse: false, root, subscribers, stalePins: stale });
    }
    queues.push(...(await reverseQueues(state, options, client)));
    return { file: state.file, takenAt: new Date(), queues, problems: problemsOf(queues) };
  } finally {
    await Promise.all([...clients.values()].map((p) => p.then((c) => c.end()).catch(() => undefined)));
  }
}

const REVERSE_SQL = `
  SELECT queue_name AS queue, consumer_name AS consumer, to_jsonb(s) ->> 'provider_database' AS provider
    FROM pgconvey.subscription s WHERE to_jsonb(s) ->> 'provider_database' IS NOT NULL ORDER BY 1, 2`;

/** The reverse replication switchovers set up: subscriptions that record their provider. */
async function reverseQueues(state: DesiredState, options: { node?: string }, client: (db: DatabaseSpec) => Promise<pg.Client>): Promise<QueueReport[]> {
  const out: QueueReport[] = [];
  for (const db of state.databases) {
    let rows: Array<{ queue: string; consumer: string; provider: string }>;
    try {
      const c = await client(db);
      if (!(await engineInstalled(c))) continue;
      rows = (await c.query(REVERSE_SQL)).rows;
    } catch {
      continue; // unreachable: reported with the file's own queues
    }
    for (const r of rows) {
      const providerDb = state.databases.find((d) => d.name === r.provider);
      if (!providerDb) continue;
      const rootName = state.queues.flatMap((q) => q.nodes).find((n) => n.database === providerDb.name)?.name ?? providerDb.name;
      if (options.node && options.node !== rootName && options.node !== r.consumer) continue;
      const rootNode: NodeSpec = { name: rootName, database: providerDb.name, type: 'root' };
      const root = await readRoot(r.queue, rootNode, providerDb, client);
      const consumers = root.error === null ? await queueStatus(await client(providerDb), r.queue) : [];
      const c = consumers.find((x) => x.consumer === r.consumer);
      const leaf: NodeSpec = { name: r.consumer, database: db.name, type: 'leaf', provider: rootName };
      out.push({ queue: r.queue, reverse: true, root, subscribers: [await readSubscriber(r.queue, leaf, db, client, c ? { lagMs: c.lagMs, pending: num(c.pendingEvents) } : null)], stalePins: [] });
    }
  }
  return out;
}

async function readRoot(queue: string, node: NodeSpec, db: DatabaseSpec, client: (db: DatabaseSpec) => Promise<pg.Client>): Promise<RootStatus> {
  const base = { node: node.name, database: db.name, display: db.display, error: null, queueExists: false, tickerRunning: null, lastTick: null, lastTickAgeSeconds: null, eventsSinceTick: null, eventsPerSecond: null };
  try {
    const c = await client(db);
    if (!(await engineInstalled(c))) return { ...base, error: 'the engine is not installed (run pgconvey apply)' };
    const status = (await queueStatus(c, queue))[0];
    if (!status) return { ...base, error: `queue "${queue}" does not exist (run pgconvey apply)` };
    const rate = (await c.query(RATE_SQL, [queue])).rows[0];
    return {
      ...base,
      queueExists: true,
      tickerRunning: await lockHeld(c, `ticker:${queue}`),
      lastTick: status.lastTick,
      lastTickAgeSeconds: num(rate?.age),
      eventsSinceTick: num(status.eventsSinceTick),
      eventsPerSecond: num(rate?.rate),
    };
  } catch (err) {
    return { ...base, error: (err as Error).message };
  }
}

async function readSubscriber(
  queue: string,
  node: NodeSpec,
  db: DatabaseSpec,
  client: (db: DatabaseSpec) => Promise<pg.Client>,
  consumer: { lagMs: number | null; pending: number | null } | null,
): Promise<SubscriberStatus> {
  const base = { node: node.name, database: db.name, display: db.display, error: null, subscribed: false, workerRunning: null, lagSeconds: null, pendingEvents: null, completedTick: null, appliedAgeSeconds: null, lastError: null, tables: [] };
  try {
    const c = await client(db);
    if (!(await engineInstalled(c))) return { ...base, error: 'the engine is not installed (run pgconvey apply)' };
    const sub = (await c.query(SUBSCRIPTION_SQL, [queue, node.name])).rows[0];
    if (!sub) return { ...base, error: `not subscribed to queue "${queue}" (run pgconvey apply)` };
    return {
      ...base,
      subscribed: true,
      workerRunning: await lockHeld(c, `worker:${queue}:${node.name}`),
      lagSeconds: consumer?.lagMs === null || consumer === null ? null : consumer.lagMs / 1000,
      pendingEvents: consumer?.pending ?? null,
      completedTick: sub.completed_tick,
      appliedAgeSeconds: num(sub.applied_age),
      lastError: sub.error_is_newer ? { message: sub.last_error, ageSeconds: Number(sub.error_age) } : null,
      tables: await tableStatus(c, queue, node.name),
    };
  } catch (err) {
    return { ...base, error: (err as Error).message };
  }
}

function problemsOf(queues: QueueReport[]): string[] {
  const out: string[] = [];
  for (const q of queues) {
    for (const pin of q.stalePins ?? []) out.push(`queue "${q.queue}": stale copy pin "${pin}" on ${q.root.node} keeps events from being emptied; the running worker drops it after its next batch (or run pgconvey plan / apply)`);
    if (q.root.error) out.push(`queue "${q.queue}": root ${q.root.node} (${q.root.display}): ${q.root.error}`);
    else if (q.root.tickerRunning === false) out.push(`queue "${q.queue}": no ticker runs on ${q.root.node}; start pgconvey run`);
    for (const s of q.subscribers) {
      if (s.error) out.push(`queue "${q.queue}": ${s.node} (${s.display}): ${s.error}`);
      else if (s.workerRunning === false) out.push(`queue "${q.queue}": no worker applies to ${s.node}; start pgconvey run`);
      if (s.lastError) out.push(`queue "${q.queue}": the worker of ${s.node} failed ${Math.round(s.lastError.ageSeconds)} s ago and has applied nothing since: ${s.lastError.message}`);
      for (const t of s.tables) {
        if (!t.lastError) continue;
        const failed = t.copyFailures ? `copy failed ${t.copyFailures} time(s)${t.lastErrorAt ? `, last ${Math.round((Date.now() - new Date(t.lastErrorAt).getTime()) / 1000)} s ago` : ''}; retried with backoff: ` : '';
        out.push(`queue "${q.queue}": ${s.node}: table ${t.schema}.${t.table} (${t.state}): ${failed}${t.lastError}`);
      }
    }
  }
  return out;
}

/**
 * Sessions of copies (application_name pgconvey:copy) waiting for a lock, with
 * what holds it: a backend (pid, state, xid, how long its transaction is open)
 * or a prepared transaction (pg_blocking_pids says 0 for those).
 */
const COPY_WAITS_SQL = `
  SELECT n.nspname AS schema, c.relname AS name, bp.pid AS blocker, b.state, b.backend_xid::text AS xid, b.application_name AS app,
         round(extract(epoch FROM clock_timestamp() - b.xact_start))::int AS xact_seconds,
         (SELECT string_agg(format('prepared transaction %L (xid %s)', p.gid, p.transaction), ', ')
            FROM pg_catalog.pg_prepared_xacts p JOIN pg_catalog.pg_locks pl ON pl.virtualtransaction = '-1/' || p.transaction::text
           WHERE pl.relation = l.relation AND pl.granted) AS prepared
    FROM pg_catalog.pg_stat_activity w
    JOIN pg_catalog.pg_locks l ON l.pid = w.pid AND NOT l.granted AND l.locktype = 'relation'
    JOIN pg_catalog.pg_class c ON c.oid = l.relation JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    CROSS JOIN LATERAL unnest(pg_catalog.pg_blocking_pids(w.pid)) AS bp(pid)
    LEFT JOIN pg_catalog.pg_stat_activity b ON b.pid = bp.pid
   WHERE w.datname = current_database() AND w.application_name = 'pgconvey:copy'`;

const LAST_TICK_SQL = `
  SELECT t.tick_id::text AS tick, t.tick_snapshot::text AS snap FROM pgconvey.tick t JOIN pgconvey.queue q USING (queue_id)
   WHERE q.queue_name = $1 ORDER BY t.tick_id DESC LIMIT 1`;

interface LockWait {
  schema: string;
  name: string;
  text: string;
}

async function lockWaits(c: pg.Client, side: string): Promise<LockWait[]> {
  const { rows } = await c.query(COPY_WAITS_SQL);
  return rows.map((r) => ({
    schema: r.schema,
    name: r.name,
    text:
      r.blocker === 0
        ? `a lock on ${side} held by ${r.prepared ?? 'a prepared transaction'}`
        : `a lock on ${side} held by pid ${r.blocker}${r.state ? ` (${r.state}` : ' ('}${r.xid ? `, xid ${r.xid}` : ''}${r.xact_seconds !== null ? `, transaction open ${r.xact_seconds} s` : ''}${r.app ? `, ${r.app}` : ''})`,
  }));
}

/**
 * What each table that is not `ok` waits for: a copy waiting for a lock (on
 * either side) names the holder; a merging table waits for the first tick
 * whose snapshot sees all its copy saw, then for the worker's next batch.
 * Best effort: what cannot be read is left out.
 */
async function annotateWaits(root: pg.Client, queue: string, subscribers: SubscriberStatus[], clientOf: (s: SubscriberStatus) => Promise<pg.Client>): Promise<void> {
  const busy = subscribers.filter((s) => s.tables.some((t) => t.state === 'copying' || t.state === 'catching-up'));
  if (!busy.length) return;
  try {
    const last = (await root.query<{ tick: string; snap: string }>(LAST_TICK_SQL, [queue])).rows[0];
    const providerWaits = busy.some((s) => s.tables.some((t) => t.state === 'copying')) ? await lockWaits(root, 'the provider') : [];
    for (const s of busy) {
      const subscriberWaits = s.tables.some((t) => t.state === 'copying') ? await lockWaits(await clientOf(s), 'the subscriber') : [];
      for (const t of s.tables) {
        if (t.state === 'copying') {
          const w = [...providerWaits, ...subscriberWaits].filter((x) => quoteQualified(x.schema, x.name) === quoteQualified(t.schema, t.table));
          if (w.length) t.waitingFor = w.map((x) => x.text).join('; ');
        } else if (t.state === 'catching-up' && t.copySnapshot && last) {
          t.waitingFor = snapshotSees(parseSnapshot(last.snap), parseSnapshot(t.copySnapshot))
            ? `the worker's next batch (tick ${last.tick} sees all the copy saw)`
            : 'a tick after the copy (is a ticker running?)';
        }
      }
    }
  } catch {
    // Status reports what it can; a wait it cannot read is not a problem of its own.
  }
}
