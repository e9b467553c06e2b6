/**
 * Status of everything a desired-state file describes, read from the
 * databases: per queue its root (last tick, events per second, whether a
 * ticker runs), per subscriber its worker (running or not, lag in seconds and
 * events, last batch applied) and per table its state with copy progress.
 * A database that cannot be reached is reported as such, not thrown.
 * Liveness comes from the advisory locks tickers and workers hold. Each node
 * shows its fence (who fenced it, when, why); a switchover stopped half way,
 * a writable node that is fenced, and capture triggers that are disabled or
 * missing are problems.
 */
import type pg from 'pg';
import type { DatabaseSpec, DesiredState, NodeSpec } from '../config/index.js';
import { connect } from '../db/index.js';
import { copyPinOwner, isCopyPin, quoteQualified, stalePins, watermarkOwner } from '../kernel/index.js';

export type { FenceState, PieceProcess } from '../engine/index.js';
import {
  engineTablesPresent,
  isCopyInProgress,
  holdsEvents,
  isFenced,
  parseSnapshot,
  pieceRunning,
  queueStatus,
  reverseSubscriptions,
  readCaptureTriggerStates,
  readFence,
  readLastTick,
  readPiece,
  readQueueRate,
  readRetention,
  readSubscriptionProgress,
  snapshotSees,
  tableStatus,
  type FenceState,
  type PieceProcess,
  type ReverseSubscription,
  type TableStatus,
} from '../engine/index.js';

export interface NodeStatusBase {
  node: string;
  database: string;
  /** `user@host:port/dbname`, never a password. */
  display: string;
  /** Why the node could not be read, when it could not. */
  error: string | null;
  /** The database's fence, when it is fenced (a database serves every queue it is in: one fence). */
  fence?: FenceState | null;
}

export interface CaptureTriggerProblem {
  table: string;
  name: string;
  /** `disabled`, `replica-only`, `always` (fires for the workers too) or `missing`. */
  trigger: 'row' | 'truncate';
  state: 'disabled' | 'replica-only' | 'always' | 'missing';
}

/**
 * Cascades: how far back a provider (the root, or a branch) keeps its events,
 * and for whom — its lowest consumer, followed down through branch
 * watermarks (engine/watermark.ts) to the node that needs them.
 */
export interface RetentionStatus {
  /** The lowest position a consumer holds the queue at, and that tick's age. */
  tick: string;
  ageSeconds: number | null;
  /** The node whose position it is, and the nodes from the provider's own subscriber down to it. */
  heldBy: string;
  through: string[];
}

/** A provider keeping events this long for a node below a branch is a problem (like pgq's 5-minute watermark period). */
const RETENTION_PROBLEM_SECONDS = 300;

export interface RootStatus extends NodeStatusBase {
  queueExists: boolean;
  tickerRunning: boolean | null;
  lastTick: string | null;
  lastTickAgeSeconds: number | null;
  eventsSinceTick: number | null;
  /** Events per second over the last minute of ticks. */
  eventsPerSecond: number | null;
  /** Capture triggers of the queue's tables that do not fire for ordinary sessions (or are missing). */
  captureTriggers?: CaptureTriggerProblem[];
  /** The processes running the ticker, or backing off to retry it (left-overs of killed processes left out). */
  tickerProcesses?: PieceProcess[];
  /** Cascades: how far back the root keeps events, and for which node. */
  retention?: RetentionStatus | null;
}

export interface SubscriberStatus extends NodeStatusBase {
  /** Cascades: `leaf` or `branch`, the node it reads from (the root or a branch), and its depth below the root (1: fed by the root). */
  type?: 'leaf' | 'branch';
  provider?: string;
  depth?: number;
  subscribed: boolean;
  workerRunning: boolean | null;
  /** Age of the last tick the subscriber has applied (a branch's ticks carry the root's tick times: this is the lag behind the root). */
  lagSeconds: number | null;
  /** Events its provider holds that the subscriber has not applied. */
  pendingEvents: number | null;
  completedTick: string | null;
  appliedAgeSeconds: number | null;
  /** The worker's last error, while it is newer than the last batch applied. */
  lastError: { message: string; ageSeconds: number } | null;
  tables: TableStatus[];
  /** Set while this subscriber is the writable node of its queue (a switchover handed it over). */
  switchedOverAt?: Date | null;
  /** The processes running the worker, or backing off to retry it (left-overs of killed processes left out). */
  workerProcesses?: PieceProcess[];
  /** Cascades, on a branch: how far back its own queue keeps events, and for which node. */
  retention?: RetentionStatus | null;
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
      // Subscribers as a tree: each after its provider, depth first (cascades: a branch feeds nodes of its own).
      const tree = cascadeTree(queue.nodes, rootNode.name);
      const leaves = tree.map((t) => t.node).filter((n) => !options.node || n.name === options.node);
      if (options.node && rootNode.name !== options.node && !leaves.length) continue;
      const root = await readRoot(queue.name, rootNode, dbOf(rootNode), client);
      const consumers = root.error === null && root.queueExists ? await queueStatus(await client(dbOf(rootNode)), queue.name) : [];
      // Each subscriber's lag and pending events are its consumer's on its own provider (a branch's queue for a node under it).
      const consumersOf = new Map<string, Awaited<ReturnType<typeof queueStatus>>>([[rootNode.name, consumers]]);
      const providerConsumers = async (name: string) => {
        if (!consumersOf.has(name)) {
          const p = queue.nodes.find((n) => n.name === name)!;
          consumersOf.set(name, await client(dbOf(p)).then((c) => queueStatus(c, queue.name)).catch(() => []));
        }
        return consumersOf.get(name)!;
      };
      const subscribers: SubscriberStatus[] = [];
      const retentionOf = (n: NodeSpec) => readRetentionTree(queue.name, n, queue.nodes, (x) => client(dbOf(x)));
      for (const leaf of leaves) {
        const c = (await providerConsumers(leaf.provider ?? rootNode.name)).find((x) => x.consumer === leaf.name);
        const read = await readSubscriber(queue.name, leaf, dbOf(leaf), client, c ? { lagMs: c.lagMs, pending: num(c.pendingEvents) } : null);
        const retention = leaf.type === 'branch' && read.subscribed ? await retentionOf(leaf) : undefined;
        subscribers.push({ ...read, type: leaf.type === 'branch' ? 'branch' : 'leaf', provider: leaf.provider, depth: tree.find((t) => t.node.name === leaf.name)!.depth, ...(retention !== undefined ? { retention } : {}) });
      }
      if (root.error === null && root.queueExists && queue.nodes.some((n) => n.type === 'branch')) root.retention = await retentionOf(rootNode);
      // Pins were read (with the consumers) before the tables: see stalePins.
      const leafNames = new Set(queue.nodes.filter((n) => n.type === 'leaf').map((n) => n.name));
      const pins = consumers.map((c) => c.consumer ?? '').filter((n) => isCopyPin(n) && (!options.node || copyPinOwner(n) === options.node));
      const holders = new Map(subscribers.filter((s) => s.subscribed).map((s) => [s.node, s.tables.map((t) => ({ state: t.state, copyPin: t.copyPin ?? null, copyGeneration: t.copyGeneration ?? null }))]));
      const unread = new Set([...leafNames].filter((n) => !holders.has(n)));
      const stale = stalePins(pins, holders, holdsEvents).filter((p) => !unread.has(copyPinOwner(p) ?? ''));
      if (root.error === null) await annotateWaits(await client(dbOf(rootNode)), queue.name, subscribers, (s) => client(dbOf(leaves.find((l) => l.name === s.node)!)));
      queues.push({ queue: queue.name, reverse: false, root, subscribers, stalePins: stale });
    }
    queues.push(...(await reverseQueues(state, options, client)));
    return { file: state.file, takenAt: new Date(), queues, problems: [...problemsOf(queues), ...switchoverProblems(state, queues)] };
  } finally {
    await Promise.all([...clients.values()].map((p) => p.then((c) => c.end()).catch(() => undefined)));
  }
}

/**
 * How far back `provider`'s queue keeps events and for whom: its lowest
 * consumer (a node, a copy pin, or a branch's watermark), followed down while
 * it is a branch's watermark whose own lowest consumer is not later than it.
 * Best effort: null when it cannot be read.
 */
async function readRetentionTree(queue: string, provider: NodeSpec, nodes: readonly NodeSpec[], clientOf: (n: NodeSpec) => Promise<pg.Client>): Promise<RetentionStatus | null> {
  try {
    const h = await readRetention(await clientOf(provider), queue);
    if (!h) return null;
    const branch = watermarkOwner(h.consumer);
    const direct = copyPinOwner(h.consumer) ?? branch ?? h.consumer;
    let through = [direct];
    const node = branch === null ? undefined : nodes.find((n) => n.name === branch && n.type === 'branch');
    if (node) {
      const below = await readRetentionTree(queue, node, nodes, clientOf);
      if (below && BigInt(below.tick) <= BigInt(h.tick)) through = [direct, ...below.through];
    }
    return { tick: h.tick, ageSeconds: h.ageSeconds, heldBy: through[through.length - 1]!, through };
  } catch {
    return null;
  }
}

/** The non-root nodes of a queue, depth first from the root, each with its depth (1: fed by the root). */
export function cascadeTree(nodes: readonly NodeSpec[], root: string): Array<{ node: NodeSpec; depth: number }> {
  const out: Array<{ node: NodeSpec; depth: number }> = [];
  const walk = (provider: string, depth: number) => {
    for (const n of nodes.filter((x) => x.type !== 'root' && x.provider === provider)) {
      out.push({ node: n, depth });
      walk(n.name, depth + 1);
    }
  };
  walk(root, 1);
  return out;
}

/** The reverse replication switchovers set up: subscriptions that record their provider. */
async function reverseQueues(state: DesiredState, options: { node?: string }, client: (db: DatabaseSpec) => Promise<pg.Client>): Promise<QueueReport[]> {
  const out: QueueReport[] = [];
  for (const db of state.databases) {
    let rows: ReverseSubscription[];
    try {
      rows = await reverseSubscriptions(await client(db));
    } catch {
      continue; // unreachable: reported with the file's own queues
    }
    for (const r of rows) {
      const providerDb = state.databases.find((d) => d.name === r.providerDatabase);
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
    if (!(await engineTablesPresent(c))) return { ...base, error: 'the engine is not installed (run pgconvey apply)' };
    const status = (await queueStatus(c, queue))[0];
    if (!status) return { ...base, error: `queue "${queue}" does not exist (run pgconvey apply)` };
    const rate = await readQueueRate(c, queue);
    return {
      ...base,
      fence: await fenceOf(c),
      captureTriggers: await captureTriggerProblems(c, queue),
      tickerProcesses: (await readPiece(c, `ticker:${queue}`)).filter((p) => p.live),
      queueExists: true,
      tickerRunning: await pieceRunning(c, `ticker:${queue}`),
      lastTick: status.lastTick,
      lastTickAgeSeconds: rate?.lastTickAgeSeconds ?? null,
      eventsSinceTick: num(status.eventsSinceTick),
      eventsPerSecond: rate?.eventsPerSecond ?? null,
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
    if (!(await engineTablesPresent(c))) return { ...base, error: 'the engine is not installed (run pgconvey apply)' };
    const sub = await readSubscriptionProgress(c, queue, node.name);
    if (!sub) return { ...base, error: `not subscribed to queue "${queue}" (run pgconvey apply)` };
    return {
      ...base,
      fence: await fenceOf(c),
      switchedOverAt: sub.switchedOverAt,
      workerProcesses: (await readPiece(c, `worker:${queue}:${node.name}`)).filter((p) => p.live),
      subscribed: true,
      workerRunning: await pieceRunning(c, `worker:${queue}:${node.name}`),
      lagSeconds: consumer?.lagMs === null || consumer === null ? null : consumer.lagMs / 1000,
      pendingEvents: consumer?.pending ?? null,
      completedTick: sub.completedTick,
      appliedAgeSeconds: sub.appliedAgeSeconds,
      lastError: sub.errorIsNewer ? { message: sub.lastError!, ageSeconds: Number(sub.lastErrorAgeSeconds) } : null,
      tables: await tableStatus(c, queue, node.name),
    };
  } catch (err) {
    return { ...base, error: (err as Error).message };
  }
}

async function fenceOf(c: pg.Client): Promise<FenceState | null> {
  const f = await readFence(c);
  return isFenced(f) ? f : null;
}

const TRIGGER_STATES: Record<string, CaptureTriggerProblem['state'] | undefined> = { D: 'disabled', R: 'replica-only', A: 'always', missing: 'missing' };

/** Capture triggers of the queue's tables that are not enabled for ordinary sessions (tgenabled 'O'). */
async function captureTriggerProblems(c: pg.Client, queue: string): Promise<CaptureTriggerProblem[]> {
  const out: CaptureTriggerProblem[] = [];
  for (const r of await readCaptureTriggerStates(c, queue)) {
    const state = TRIGGER_STATES[r.enabled];
    if (state) out.push({ table: quoteQualified(r.table.schema, r.table.name), name: r.trigger, trigger: r.kind, state });
  }
  return out;
}

const since = (d: Date) => d.toISOString();

/** A fence in one clause: `fenced since T by a switchover to X (pgconvey switchover, pid …)`. */
export function describeFence(f: FenceState): string {
  const r = f.record;
  const layers = [f.readOnlyDefault ? 'sessions start read-only' : null, f.tables ? `${f.fencedTables}/${f.tables} tables refuse writes` : null].filter(Boolean).join(', ');
  if (!r) return `fenced by hand or by an older pgconvey (${layers || 'no layer'}), no record of when`;
  const why = r.purpose === 'standby' ? `standby: "${r.switchoverTo}" takes writes` : `by a switchover to "${r.switchoverTo}" that has not finished`;
  return `fenced since ${since(r.fencedAt)} ${why}${r.fencedBy ? ` (${r.fencedBy})` : ''}; ${layers}`;
}

/**
 * What a switchover left needing attention, per queue of the file: a fence
 * of a switchover in progress (half done: how to finish or undo it), the
 * writable node fenced, a fence missing layers, the old node writable after a
 * hand-over (writes there are not replicated forward).
 */
function switchoverProblems(state: DesiredState, queues: QueueReport[]): string[] {
  const out: string[] = [];
  const cmd = (to: string) => `pgconvey switchover ${state.file} --to ${to}`;
  for (const q of queues.filter((x) => !x.reverse)) {
    const spec = state.queues.find((s) => s.name === q.queue);
    if (!spec || q.root.error) continue;
    const nodes = [q.root, ...q.subscribers.filter((s) => !s.error)];
    const handedTo = q.subscribers.find((s) => s.switchedOverAt);
    const writable = handedTo?.node ?? q.root.node;
    for (const n of nodes) {
      const f = n.fence;
      if (!f) {
        if (handedTo && n.node === q.root.node) out.push(`queue "${q.queue}": ${n.node} (${n.display}) is writable, but the queue was switched over to ${writable}: writes on ${n.node} reach no other node; fence it again with \`${cmd(writable)}\``);
        continue;
      }
      const r = f.record;
      if (r?.purpose === 'switchover') {
        const undo = r.node !== r.switchoverTo ? r.node : r.switchoverTo === q.root.node ? (handedTo?.node ?? q.subscribers[0]?.node ?? q.root.node) : q.root.node;
        out.push(`queue "${q.queue}": a switchover to ${r.switchoverTo} stopped half way: ${n.node} (${n.display}) is ${describeFence(f)}; finish it with \`${cmd(r.switchoverTo)}\` or undo it with \`${cmd(undo)}\``);
      } else if (n.node === writable) {
        out.push(`queue "${q.queue}": ${n.node} (${n.display}) should take writes but is ${describeFence(f)}; \`${cmd(writable)}\` lifts the fence`);
      } else if (r && f.tables > f.fencedTables) {
        out.push(`queue "${q.queue}": ${n.node} (${n.display}) is ${describeFence(f)}: ${f.tables - f.fencedTables} table(s) can be written; \`${cmd(writable)}\` completes the fence`);
      }
    }
  }
  return out;
}

const secondsUntil = (d: Date | null) => (d ? Math.max(0, Math.round((d.getTime() - Date.now()) / 1000)) : 0);

/**
 * A piece of `run` (a ticker, a worker): not running and no process retrying
 * it → start run; processes backing off → each with its own last error and
 * when it retries; running, and another process failing beside it (a second
 * `run`, misconfigured or busy) → that process's error, not the running one's.
 */
function pieceProblems(queue: string, what: string, running: boolean | null, processes: PieceProcess[], notStarted: string): string[] {
  if (running === null) return [];
  const failing = processes.filter((p) => p.state === 'backing-off');
  const named = (p: PieceProcess) => `process ${p.process}${p.application ? ` (${p.application})` : ''}`;
  if (!running && !failing.length) return [`queue "${queue}": ${notStarted}`];
  return failing.map((p) =>
    running
      ? `queue "${queue}": ${what} runs, and ${named(p)} also tries to run it and fails (retry in ${secondsUntil(p.retryAt)} s): ${p.lastError}; stop that process or fix its file`
      : `queue "${queue}": ${what} is backing off in ${named(p)} (retry in ${secondsUntil(p.retryAt)} s) after: ${p.lastError}`,
  );
}

/** The report's problems, each a line `status` prints (and exits 1 for). Exported for its unit test. */
export function problemsOf(queues: QueueReport[]): string[] {
  const out: string[] = [];
  for (const q of queues) {
    for (const pin of q.stalePins ?? []) out.push(`queue "${q.queue}": stale copy pin "${pin}" on ${q.root.node} keeps events from being emptied; the running worker drops it after its next batch (or run pgconvey plan / apply)`);
    if (q.root.error) out.push(`queue "${q.queue}": root ${q.root.node} (${q.root.display}): ${q.root.error}`);
    else out.push(...pieceProblems(q.queue, `the ticker on ${q.root.node}`, q.root.tickerRunning, q.root.tickerProcesses ?? [], `no ticker runs on ${q.root.node}; start pgconvey run`));
    for (const s of q.subscribers) {
      const processes = s.workerProcesses ?? [];
      if (s.error) out.push(`queue "${q.queue}": ${s.node} (${s.display}): ${s.error}`);
      else out.push(...pieceProblems(q.queue, `the worker of ${s.node}`, s.workerRunning, processes, `no worker applies to ${s.node}; start pgconvey run`));
      // A backing-off process's row carries its error (reported above). Otherwise the subscription's last error,
      // newer than its last applied batch, is reported whatever the rows say: a worker that reconnected and marks
      // itself running still holds the same batch until a step succeeds.
      if (s.lastError && !processes.some((p) => p.state === 'backing-off')) out.push(`queue "${q.queue}": the worker of ${s.node} failed ${Math.round(s.lastError.ageSeconds)} s ago and has applied nothing since: ${s.lastError.message}`);
      for (const t of s.tables) {
        if (!t.lastError) continue;
        const failed = t.copyFailures ? `copy failed ${t.copyFailures} time(s)${t.lastErrorAt ? `, last ${Math.round((Date.now() - new Date(t.lastErrorAt).getTime()) / 1000)} s ago` : ''}; retried with backoff: ` : '';
        out.push(`queue "${q.queue}": ${s.node}: table ${t.schema}.${t.table} (${t.state}): ${failed}${t.lastError}`);
      }
    }
    // Cascades: a provider keeping events for a node below one of its branches (a stopped leaf holds the root too).
    for (const [node, r] of [[q.root.node, q.root.retention] as const, ...q.subscribers.map((s) => [s.node, s.retention] as const)]) {
      if (!r || r.through.length < 2 || r.ageSeconds === null || r.ageSeconds < RETENTION_PROBLEM_SECONDS) continue;
      out.push(
        `queue "${q.queue}": ${node} keeps its events back to tick ${r.tick} (${Math.round(r.ageSeconds)} s old) for ${r.heldBy}, through the watermark of ${r.through.slice(0, -1).join(' → ')}: ` +
          `start ${r.heldBy}'s worker, or remove ${r.heldBy} from the file and apply (its consumer goes, and the watermarks above it move on)`,
      );
    }
    for (const t of q.root.captureTriggers ?? []) {
      const fix = t.state === 'missing' ? 'run `pgconvey apply FILE` to re-create it' : `ALTER TABLE ${t.table} ENABLE TRIGGER ${t.name}`;
      const harm = t.state === 'always' ? 'it fires for the workers too, so applied rows are captured again' : `writes to ${t.table} are not captured`;
      out.push(`queue "${q.queue}": the capture ${t.trigger} trigger ${t.name} of ${t.table} on ${q.root.node} is ${t.state}: ${harm}; ${fix}, then check with \`pgconvey compare\` (and \`pgconvey resync\` the table if it differs)`);
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
  const busy = subscribers.filter((s) => s.tables.some((t) => isCopyInProgress(t.state)));
  if (!busy.length) return;
  try {
    const last = await readLastTick(root, queue);
    const providerWaits = busy.some((s) => s.tables.some((t) => t.state === 'copying')) ? await lockWaits(root, 'the provider') : [];
    for (const s of busy) {
      const subscriberWaits = s.tables.some((t) => t.state === 'copying') ? await lockWaits(await clientOf(s), 'the subscriber') : [];
      for (const t of s.tables) {
        if (t.state === 'copying') {
          const w = [...providerWaits, ...subscriberWaits].filter((x) => quoteQualified(x.schema, x.name) === quoteQualified(t.schema, t.table));
          if (w.length) t.waitingFor = w.map((x) => x.text).join('; ');
        } else if (t.state === 'catching-up' && t.copySnapshot && last) {
          t.waitingFor = snapshotSees(parseSnapshot(last.snapshot), parseSnapshot(t.copySnapshot))
            ? `the worker's next batch (tick ${last.tick} sees all the copy saw)`
            : 'a tick after the copy (is a ticker running?)';
        }
      }
    }
  } catch {
    // Status reports what it can; a wait it cannot read is not a problem of its own.
  }
}
