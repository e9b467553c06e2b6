/**
 * compare: proves a subscriber's copy of each replicated table equals the
 * provider's, at the same queue position. Per table: lock it on the provider
 * in SHARE mode, force a tick T, wait until the subscriber has applied T,
 * take a REPEATABLE READ snapshot on both sides, release the lock — both
 * snapshots now hold the same state of the table. The lock never keeps the
 * table's writers waiting longer than a bound: compare requests it only when
 * no other transaction holds a conflicting lock on the table (it waits for
 * those without queueing, and says for which), with a short lock_timeout,
 * and lets go when the subscriber does not apply T quickly, then tries
 * again. Then count and checksum the table in key-range chunks on both
 * sides, and narrow every chunk that differs down to the exact keys. After a
 * switchover the live direction is compared: the new node through the
 * reverse queue to the old one.
 */
import type pg from 'pg';
import { introspectNode, type EngineQueueInfo, type NodeCatalog } from '../catalog/index.js';
import { displayQualified, type DatabaseSpec, type DesiredState, type NodeSpec, type QueueSpec } from '../config/index.js';
import { connect } from '../db/index.js';
import { EXACT_SESSION_SQL, forceTick } from '../engine/index.js';
import { closest, quoteQualified, sqlFormat } from '../kernel/index.js';
import { reverseQueueName } from '../engine/index.js';
import { TableNameError, parseTableName } from './table-name.js';
import {
  canonicalKeys,
  keyAtOffset,
  readColumns,
  isPartitioned,
  rowDigests,
  sortKeys,
  summarizeRange,
  type KeyRange,
  type KeyTuple,
  type RangeSummary,
  type TableShape,
} from './checksum-sql.js';

export interface CompareOptions {
  /** Only these tables (`schema.table`, or `table` for public); default every replicated table. */
  tables?: string[];
  /** Only this queue. */
  queue?: string;
  /** Only this subscriber node. */
  node?: string;
  /** Rows per chunk, cut in the provider's key order. */
  chunkRows?: number;
  /** A differing range is split until it holds at most this many provider rows, then read row by row. */
  narrowRows?: number;
  /** Keys listed per kind (missing, extra, changed) per differing range; the rest are counted. */
  listLimit?: number;
  /** Differing ranges narrowed per table; further differing chunks are only counted. */
  maxRanges?: number;
  /**
   * The longest one attempt keeps a table's writers waiting, from the lock request to its release:
   * when the subscriber has not applied the tick by then, the lock is released and compare tries again.
   */
  maxPauseMs?: number;
  /**
   * When an attempt is released because the subscriber was too slow, the next one may hold the lock
   * 1.5 times as long, up to this: a slow subscriber makes the pause longer rather than compare endless.
   */
  maxPauseCapMs?: number;
  /** lock_timeout of each LOCK request (the part of maxPauseMs spent queued behind a writer that just began). */
  lockTimeoutMs?: number;
  /** How long compare tries to lock one table (waiting, without queueing, for the transactions that hold it) before it gives up. */
  lockWaitMs?: number;
  /** While a table cannot be locked at its first visit, compare goes on with the pair's other tables after this long and comes back to it. */
  revisitAfterMs?: number;
  /** Give up when the subscription's applied position has not moved for this long while waiting for a tick. */
  applyStallMs?: number;
  onProgress?: (progress: CompareProgress) => void;
}

type Tunables = Required<Omit<CompareOptions, 'tables' | 'queue' | 'node' | 'onProgress'>>;

export const COMPARE_DEFAULTS: Readonly<Tunables> = {
  chunkRows: 50_000,
  narrowRows: 1_000,
  listLimit: 20,
  maxRanges: 20,
  maxPauseMs: 100,
  maxPauseCapMs: 1_000,
  lockTimeoutMs: 30,
  lockWaitMs: 300_000,
  revisitAfterMs: 2_000,
  applyStallMs: 30_000,
};

/** A transaction holding a lock on a table that conflicts with compare's SHARE lock. */
export interface BlockingTransaction {
  /** Null for a prepared transaction. */
  pid: number | null;
  /** The prepared transaction's name (pg_prepared_xacts.gid), for one. */
  preparedGid: string | null;
  user: string | null;
  applicationName: string | null;
  /** pg_stat_activity.state: `active`, `idle in transaction`, … */
  state: string | null;
  /** When its transaction began. */
  since: Date | null;
}

/** A transaction compare waited for before it requested a table's lock, and for how long. */
export interface WaitedFor extends BlockingTransaction {
  waitedMs: number;
}

export interface CompareProgress {
  queue: string;
  node: string;
  table: string;
  /** Set while compare waits, without queueing, for transactions holding the table before it locks it. */
  waitingFor?: BlockingTransaction[];
  rowsDone: number;
  /** The provider's estimate of the table's rows, when it has one. */
  rowsEstimated: number | null;
  chunksDone: number;
  seconds: number;
}

/** Key column name → value as text. */
export type KeyValues = Record<string, string>;

export interface DifferingRange {
  /** First and last differing key of the range, in key order (inclusive). */
  from: KeyValues;
  to: KeyValues;
  providerRows: number;
  subscriberRows: number;
  /** Keys on the provider and not on the subscriber (at most listLimit; missingCount has them all). */
  missing: KeyValues[];
  extra: KeyValues[];
  /** Keys on both sides whose rows differ. */
  changed: KeyValues[];
  missingCount: number;
  extraCount: number;
  changedCount: number;
}

export interface TableComparison {
  /** The queue compared along: the file's queue, or after a switchover its reverse queue. */
  queue: string;
  /** `reverse`: after a switchover, the new node (provider) → the old one (subscriber) through the reverse queue. */
  direction: 'forward' | 'reverse';
  /** The subscriber node. */
  node: string;
  /** Password-free displays of the two databases. */
  provider: string;
  subscriber: string;
  /** `schema.table`. */
  table: string;
  keyColumns: string[];
  /** The table's state on the subscriber; only `ok` tables are compared. */
  state: string;
  compared: boolean;
  providerRows: number | null;
  subscriberRows: number | null;
  /** Null when not compared. */
  equal: boolean | null;
  chunks: number;
  differingRanges: DifferingRange[];
  /** Differing ranges beyond maxRanges: counted, not narrowed or listed. */
  moreDifferingRanges: number;
  /**
   * How long writers of the table could have been held up on the provider: the sum over lock
   * attempts of lock request → release (a writer waits at most one of them).
   */
  writersPausedMs: number | null;
  /** The longest of those attempts: the most any one writer waited for compare. */
  writersLongestPauseMs: number | null;
  /** Lock requests made (attempts released because the subscriber was slow, or timed out, count). */
  lockAttempts: number | null;
  /** Transactions compare waited for, without blocking anyone, before it could request the lock. */
  waitedFor: WaitedFor[];
  seconds: number | null;
}

export interface CompareReport {
  file: string;
  tables: TableComparison[];
  /** Every compared table equal (and at least one was compared, or none was asked for explicitly). */
  equal: boolean;
}

/** Bad input or a setup that cannot be compared: a code (docs/errors.md), what is wrong, and the fix. */
export class CompareError extends Error {
  /** The hint again, under the name the CLI framework prints as "Try this". */
  readonly suggestions: string[];
  constructor(
    readonly code: string,
    message: string,
    readonly hint: string,
  ) {
    super(message);
    this.name = 'CompareError';
    this.suggestions = [hint];
  }
}

/** A table as the root's engine catalog captures it: key columns and shipped columns. */
type CapturedTable = EngineQueueInfo['tables'][number];

/** A captured table, with its state on the subscriber and the provider's row estimate. */
interface PlannedTable {
  captured: CapturedTable;
  state: string;
  estimatedRows: number | null;
}

/**
 * One provider → subscriber pair, and the tables to compare on it: a queue's
 * root and leaf, or after a switchover the leaf (now writable) and the root
 * through the reverse queue.
 */
interface PairPlan {
  direction: 'forward' | 'reverse';
  /** The queue whose position both sides are read at. */
  queue: string;
  /** The subscription's consumer name on the subscriber. */
  consumer: string;
  /** Node names, for messages. */
  providerNode: string;
  subscriberNode: string;
  providerDb: DatabaseSpec;
  subscriberDb: DatabaseSpec;
  providerCatalog: NodeCatalog;
  tables: PlannedTable[];
}

const SPLIT_FANOUT = 10;

/** Compares every selected table of every selected provider → subscriber pair of `state`. */
export async function compareState(state: DesiredState, options: CompareOptions = {}): Promise<CompareReport> {
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  const opts: Settings = { ...COMPARE_DEFAULTS, ...given };
  const wanted = (options.tables ?? []).map(tableNameOf);
  const pairs = await liveDirections(state, selectPairs(state, options));
  const catalogs = await readCatalogs(state, pairs);
  const plans = planPairs(state, pairs, catalogs, wanted);
  const tables: TableComparison[] = [];
  for (const plan of plans) tables.push(...(await comparePair(plan, opts)));
  const compared = tables.filter((t) => t.compared);
  return { file: state.file, tables, equal: compared.every((t) => t.equal) };
}

function selectPairs(state: DesiredState, options: CompareOptions): Array<{ queue: QueueSpec; root: NodeSpec; leaf: NodeSpec }> {
  const queues = state.queues.filter((q) => !options.queue || q.name === options.queue);
  if (options.queue && !queues.length) {
    const names = state.queues.map((q) => q.name);
    const guess = closest(options.queue, names);
    throw new CompareError('unknown_queue', `queue "${options.queue}" is not in ${state.file}`, `${guess ? `did you mean "${guess}"? ` : ''}queues: ${names.join(', ')}`);
  }
  const pairs = queues.flatMap((queue) => {
    const root = queue.nodes.find((n) => n.type === 'root')!;
    return queue.nodes.filter((n) => n.type !== 'root' && n.provider === root.name).map((leaf) => ({ queue, root, leaf }));
  });
  const selected = pairs.filter((p) => !options.node || p.leaf.name === options.node);
  if (options.node && !selected.length) {
    const names = [...new Set(pairs.map((p) => p.leaf.name))];
    const guess = closest(options.node, names);
    throw new CompareError(
      'unknown_node',
      `"${options.node}" is not a subscriber of ${options.queue ? `queue "${options.queue}"` : `any queue in ${state.file}`}`,
      `${guess ? `did you mean "${guess}"? ` : ''}subscribers: ${names.join(', ') || 'none'}`,
    );
  }
  return selected;
}

/** A pair to compare, in the direction writes flow now. */
interface LivePair {
  direction: 'forward' | 'reverse';
  queue: string;
  consumer: string;
  provider: NodeSpec;
  subscriber: NodeSpec;
}

/**
 * For each root → leaf pair of the file: the direction writes flow now. After
 * a switchover the leaf took the writes (its subscription has
 * switched_over_at); the live direction is then the reverse queue it set up,
 * whose subscription on the root names the leaf's database as its provider.
 * Without one, nothing keeps the two at one position: compare refuses.
 */
async function liveDirections(state: DesiredState, pairs: Array<{ queue: QueueSpec; root: NodeSpec; leaf: NodeSpec }>): Promise<LivePair[]> {
  const clients = new Map<string, Promise<pg.Client>>();
  const client = (database: string) => {
    if (!clients.has(database)) clients.set(database, connect(databaseOf(state, database).connection, 'compare'));
    return clients.get(database)!;
  };
  try {
    const out: LivePair[] = [];
    for (const { queue, root, leaf } of pairs) {
      const forward: LivePair = { direction: 'forward', queue: queue.name, consumer: leaf.name, provider: root, subscriber: leaf };
      const switchedAt = await subscriptionField(await client(leaf.database), queue.name, leaf.name, 'switched_over_at');
      if (!switchedAt) {
        out.push(forward);
        continue;
      }
      const reverse = reverseQueueName(queue.name);
      const provider = await subscriptionField(await client(root.database), reverse, root.name, 'provider_database');
      if (provider !== leaf.database) {
        throw new CompareError(
          'compare_after_switchover',
          `node "${leaf.name}" took over writes from "${root.name}" (switchover at ${switchedAt}) and nothing replicates them back to "${root.name}": the two cannot be read at one queue position, and fresh writes on "${leaf.name}" would show as differences`,
          `switch over with --reverse (pgconvey switchover FILE --to ${leaf.name} --reverse) to compare along the reverse queue, or switch back first (pgconvey switchover FILE --to ${root.name})`,
        );
      }
      out.push({ direction: 'reverse', queue: reverse, consumer: root.name, provider: leaf, subscriber: root });
    }
    return out;
  } finally {
    await Promise.all([...clients.values()].map((c) => c.then((x) => x.end()).catch(() => undefined)));
  }
}

/** A column of a subscription row as text, or null (also when the engine or the column is not there). */
async function subscriptionField(client: pg.Client, queue: string, consumer: string, field: string): Promise<string | null> {
  const { rows } = await client.query<{ value: string | null }>(
    `SELECT CASE WHEN pg_catalog.to_regclass('pgconvey.subscription') IS NOT NULL THEN
              (SELECT pg_catalog.to_jsonb(s) ->> $3 FROM pgconvey.subscription s WHERE s.queue_name = $1 AND s.consumer_name = $2) END AS value`,
    [queue, consumer, field],
  );
  return rows[0]?.value ?? null;
}

async function readCatalogs(state: DesiredState, pairs: LivePair[]): Promise<Map<string, NodeCatalog>> {
  const names = [...new Set(pairs.flatMap((p) => [p.provider.database, p.subscriber.database]))];
  const entries = await Promise.all(
    names.map(async (name) => {
      const client = await connect(databaseOf(state, name).connection, 'compare');
      try {
        return [name, await introspectNode(client)] as const;
      } finally {
        await client.end().catch(() => undefined);
      }
    }),
  );
  return new Map(entries);
}

function databaseOf(state: DesiredState, name: string): DatabaseSpec {
  return state.databases.find((d) => d.name === name)!;
}

/** Checks the set-up and the named tables before anything is locked; throws CompareError on bad input. */
function planPairs(
  desired: DesiredState,
  pairs: LivePair[],
  catalogs: Map<string, NodeCatalog>,
  wanted: Array<{ schema: string; name: string }>,
): PairPlan[] {
  const plans: PairPlan[] = [];
  for (const { direction, queue, consumer, provider: root, subscriber: leaf } of pairs) {
    const providerCatalog = catalogs.get(root.database)!;
    const subscriberCatalog = catalogs.get(leaf.database)!;
    const engineQueue = providerCatalog.engine?.queues.find((q) => q.name === queue);
    if (!engineQueue) {
      throw new CompareError('queue_not_set_up', `queue "${queue}" is not set up on its ${direction === 'forward' ? 'root ' : ''}node "${root.name}"`, 'run `pgconvey apply` with this file first');
    }
    const subscription = subscriberCatalog.engine?.subscriptions.find((s) => s.queue === queue && s.consumer === consumer);
    if (!subscription) {
      throw new CompareError('not_subscribed', `node "${leaf.name}" is not subscribed to queue "${queue}"`, 'run `pgconvey apply` with this file first');
    }
    const tables: PlannedTable[] = [];
    for (const captured of engineQueue.tables) {
      const isNamed = wanted.some((w) => w.schema === captured.schema && w.name === captured.name);
      if (wanted.length && !isNamed) continue;
      const tableState = subscription.tables.find((t) => t.schema === captured.schema && t.name === captured.name)?.state ?? 'not subscribed';
      if (isNamed && tableState !== 'ok') {
        throw new CompareError(
          'table_not_ready',
          `${displayQualified(captured.schema, captured.name)} cannot be compared on node "${leaf.name}" yet: its state is ${tableState}`,
          tableState === 'not subscribed' ? 'run `pgconvey apply` so the subscriber takes the table' : 'wait until its initial copy is done (state ok), with the worker running',
        );
      }
      const info = providerCatalog.tables.find((t) => t.schema === captured.schema && t.name === captured.name);
      tables.push({ captured, state: tableState, estimatedRows: info?.estimatedRows ?? null });
    }
    plans.push({
      direction,
      queue,
      consumer,
      providerNode: root.name,
      subscriberNode: leaf.name,
      providerDb: databaseOf(desired, root.database),
      subscriberDb: databaseOf(desired, leaf.database),
      providerCatalog,
      tables,
    });
  }
  for (const w of wanted) {
    const label = displayQualified(w.schema, w.name);
    if (plans.some((p) => p.tables.some((t) => t.captured.schema === w.schema && t.captured.name === w.name))) continue;
    const roots = plans.map((p) => p.providerCatalog);
    if (!roots.some((c) => c.tables.some((t) => t.schema === w.schema && t.name === w.name))) {
      const candidates = [...new Set(roots.flatMap((c) => c.tables.map((t) => displayQualified(t.schema, t.name))))];
      const guess = closest(label, candidates);
      throw new CompareError('unknown_table', `table ${label} does not exist on the root`, guess ? `did you mean ${guess}?` : 'check the name (schema.table, or table for public)');
    }
    throw new CompareError('table_not_replicated', `table ${label} is not replicated by the selected queue(s)`, 'add it to the queue\'s tables in the file and run `pgconvey apply`, or name a replicated table');
  }
  return plans;
}

/** A table named on the command line; CompareError for a malformed name or a glob. */
function tableNameOf(text: string): { schema: string; name: string } {
  try {
    return parseTableName(text);
  } catch (err) {
    if (err instanceof TableNameError) throw new CompareError(err.code, err.message, err.hint);
    throw err;
  }
}

interface Connections {
  /** Provider session that holds a table's SHARE lock while both snapshots are taken. */
  lock: pg.Client;
  provider: pg.Client;
  subscriber: pg.Client;
}

type Settings = Tunables & CompareOptions;

/**
 * compare's sessions must not be cut short by the server's, database's or
 * role's defaults: counting a large table takes as long as it takes. Set only
 * where the server knows the setting (idle_session_timeout from 14,
 * transaction_timeout from 17).
 */
const LONG_SESSION: ReadonlyArray<readonly [string, string]> = [
  ['statement_timeout', '0'],
  ['idle_in_transaction_session_timeout', '0'],
  ['idle_session_timeout', '0'],
  ['transaction_timeout', '0'],
  ['lock_timeout', '0'],
];

/**
 * The lock session's transaction is short by construction (maxPauseMs); should
 * compare itself stall while holding the lock, the server ends the session
 * after this long, so the writers go on.
 */
const LOCK_SESSION_GUARD_MS = 5_000;

/** Sets the settings the server knows, for the session. */
async function pinSettings(client: pg.Client, settings: ReadonlyArray<readonly [string, string]>): Promise<void> {
  await client.query(
    `SELECT pg_catalog.set_config(v.name, v.value, false)
       FROM (SELECT pg_catalog.unnest($1::text[]) AS name, pg_catalog.unnest($2::text[]) AS value) v
      WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_settings s WHERE s.name = v.name)`,
    [settings.map(([n]) => n), settings.map(([, v]) => v)],
  );
}

async function comparePair(plan: PairPlan, opts: Settings): Promise<TableComparison[]> {
  const base = (t: PlannedTable) => ({
    queue: plan.queue,
    direction: plan.direction,
    node: plan.subscriberNode,
    provider: plan.providerDb.display,
    subscriber: plan.subscriberDb.display,
    table: displayQualified(t.captured.schema, t.captured.name),
    keyColumns: t.captured.keyColumns,
    state: t.state,
  });
  const notCompared = (t: PlannedTable): TableComparison => ({
    ...base(t),
    compared: false,
    providerRows: null,
    subscriberRows: null,
    equal: null,
    chunks: 0,
    differingRanges: [],
    moreDifferingRanges: 0,
    writersPausedMs: null,
    writersLongestPauseMs: null,
    lockAttempts: null,
    waitedFor: [],
    seconds: null,
  });
  if (!plan.tables.some((t) => t.state === 'ok')) return plan.tables.map(notCompared);

  const opened: pg.Client[] = [];
  const open = async (db: DatabaseSpec) => {
    const client = await connect(db.connection, 'compare');
    opened.push(client);
    return client;
  };
  try {
    const conns: Connections = { lock: await open(plan.providerDb), provider: await open(plan.providerDb), subscriber: await open(plan.subscriberDb) };
    await pinSettings(conns.lock, [...LONG_SESSION.filter(([n]) => n !== 'lock_timeout' && n !== 'idle_in_transaction_session_timeout'), ['lock_timeout', `${opts.lockTimeoutMs}ms`], ['idle_in_transaction_session_timeout', `${LOCK_SESSION_GUARD_MS}ms`]]);
    for (const c of [conns.provider, conns.subscriber]) {
      await c.query(EXACT_SESSION_SQL);
      await pinSettings(c, LONG_SESSION);
    }
    const out = new Map<PlannedTable, TableComparison>();
    // A table whose lock is held by a long transaction is visited again after the others.
    const revisit: Array<{ table: PlannedTable; lock: LockReport }> = [];
    for (const [i, t] of plan.tables.entries()) {
      if (t.state !== 'ok') {
        out.set(t, notCompared(t));
        continue;
      }
      const othersLeft = plan.tables.slice(i + 1).some((x) => x.state === 'ok');
      try {
        out.set(t, { ...base(t), ...(await compareTable(plan, t, conns, opts, othersLeft ? opts.revisitAfterMs : opts.lockWaitMs, othersLeft, newLockReport())) });
      } catch (err) {
        if (!(err instanceof Deferred)) throw err;
        revisit.push({ table: t, lock: err.lock });
      }
    }
    for (const { table, lock } of revisit) out.set(table, { ...base(table), ...(await compareTable(plan, table, conns, opts, opts.lockWaitMs, false, lock)) });
    return plan.tables.map((t) => out.get(t)!);
  } finally {
    await Promise.all(opened.map((c) => c.end().catch(() => undefined)));
  }
}

type Measured = Omit<TableComparison, 'queue' | 'direction' | 'node' | 'provider' | 'subscriber' | 'table' | 'keyColumns' | 'state'>;

async function compareTable(plan: PairPlan, t: PlannedTable, conns: Connections, opts: Settings, lockBudgetMs: number, canDefer: boolean, lock: LockReport): Promise<Measured> {
  const started = Date.now();
  const shapes = await tableShapes(plan, t.captured, conns);
  const table = displayQualified(t.captured.schema, t.captured.name);
  const progress = (p: Pick<CompareProgress, 'rowsDone' | 'chunksDone' | 'waitingFor'>) =>
    opts.onProgress?.({ queue: plan.queue, node: plan.subscriberNode, table, rowsEstimated: t.estimatedRows, seconds: (Date.now() - started) / 1000, ...p });
  await takeSnapshotsAtOnePosition(plan, t.captured, conns, opts, { deadline: Date.now() + lockBudgetMs, canDefer, report: lock, progress });
  try {
    const ranges = new RangeComparer(conns, shapes, t.captured.keyColumns, opts);
    let after: KeyTuple | null = null;
    let chunks = 0;
    for (;;) {
      const through = await keyAtOffset(conns.provider, shapes.provider, { after, through: null }, opts.chunkRows - 1);
      await ranges.compareChunk({ after, through });
      chunks++;
      progress({ rowsDone: ranges.providerRows, chunksDone: chunks });
      if (!through) break;
      after = through;
    }
    const equal = ranges.differing.length === 0 && ranges.moreDiffering === 0;
    return {
      compared: true,
      providerRows: ranges.providerRows,
      subscriberRows: ranges.subscriberRows,
      equal,
      chunks,
      differingRanges: ranges.differing,
      moreDifferingRanges: ranges.moreDiffering,
      writersPausedMs: Math.round(lock.pausedMs),
      writersLongestPauseMs: Math.round(lock.longestPauseMs),
      lockAttempts: lock.attempts,
      waitedFor: [...lock.waited.values()].map((w) => ({ ...w, waitedMs: Math.round(w.waitedMs) })),
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    // Read-only snapshots: nothing to keep.
    await conns.provider.query('ROLLBACK');
    await conns.subscriber.query('ROLLBACK');
  }
}

/** The table on each side: this side's key types, and the shipped columns both sides have, in the provider's order. */
async function tableShapes(plan: PairPlan, captured: CapturedTable, conns: Connections): Promise<{ provider: TableShape; subscriber: TableShape }> {
  const [pCols, sCols, pPart, sPart] = await Promise.all([
    readColumns(conns.provider, captured.schema, captured.name),
    readColumns(conns.subscriber, captured.schema, captured.name),
    isPartitioned(conns.provider, captured.schema, captured.name),
    isPartitioned(conns.subscriber, captured.schema, captured.name),
  ]);
  const label = displayQualified(captured.schema, captured.name);
  const missingKeys = captured.keyColumns.filter((k) => !pCols.has(k) || !sCols.has(k));
  if (missingKeys.length) {
    throw new CompareError(
      'key_columns_missing',
      `key column(s) ${missingKeys.join(', ')} of ${label} are missing on ${sCols.size ? `node "${plan.subscriberNode}" or node "${plan.providerNode}"` : `node "${plan.subscriberNode}" (the table is gone)`}`,
      'make the table match on both sides (pgconvey plan shows the differences)',
    );
  }
  const columns = captured.columns.filter((c) => pCols.has(c) && sCols.has(c));
  const shape = (cols: Map<string, { type: string; collatable: boolean }>, partitioned: boolean): TableShape => ({
    partitioned,
    schema: captured.schema,
    name: captured.name,
    keys: captured.keyColumns.map((k) => ({ name: k, ...cols.get(k)! })),
    columns,
    floats: new Map(columns.flatMap((c) => (cols.get(c)!.type === 'real' || cols.get(c)!.type === 'double precision' ? [[c, cols.get(c)!.type as 'real' | 'double precision']] : []))),
  });
  return { provider: shape(pCols, pPart), subscriber: shape(sCols, sPart) };
}

/** What taking a table's consistency point cost, and whom it waited for. */
interface LockReport {
  /** Sum over lock requests of request → release (ms). */
  pausedMs: number;
  longestPauseMs: number;
  attempts: number;
  /** By pid (or prepared transaction name). */
  waited: Map<string, WaitedFor>;
}

function newLockReport(): LockReport {
  return { pausedMs: 0, longestPauseMs: 0, attempts: 0, waited: new Map() };
}

/** A table that could not be locked at its first visit: compare comes back to it after the pair's other tables. */
class Deferred extends Error {
  constructor(readonly lock: LockReport) {
    super('deferred');
  }
}

/** Time the snapshots and the COMMIT take once the tick is applied; kept free inside maxPauseMs. */
const SNAPSHOT_MARGIN_MS = 15;

interface LockRound {
  /** Date.now() after which compare gives up on the table (or defers it). */
  deadline: number;
  canDefer: boolean;
  report: LockReport;
  progress: (p: Pick<CompareProgress, 'rowsDone' | 'chunksDone' | 'waitingFor'>) => void;
}

/**
 * Londiste's method, with a bounded pause: with the table locked in SHARE
 * mode on the provider (its writers wait; every earlier writer has
 * committed), force a tick T and wait until the subscriber has applied T — it
 * then holds every change of the table, and no later one exists yet.
 * Snapshots taken on both sides before the lock is released therefore show
 * the same state of the table, whatever the worker applies afterwards.
 *
 * A LOCK request queued behind a running transaction would keep every new
 * writer of the table waiting behind it, so compare requests it only when no
 * other transaction holds a conflicting lock (it waits for those, without
 * queueing, and reports them), with a lock_timeout of lockTimeoutMs for the
 * race with a writer that begins in between; and it lets go when the
 * subscriber has not applied T within maxPauseMs of the request. Then it
 * catches up again without a lock and tries again — holding up to 1.5 times
 * as long after each attempt the subscriber was too slow for, never more than
 * maxPauseCapMs. Leaves both work sessions in their REPEATABLE READ snapshot.
 */
async function takeSnapshotsAtOnePosition(plan: PairPlan, captured: CapturedTable, conns: Connections, opts: Settings, round: LockRound): Promise<void> {
  let pauseMs = opts.maxPauseMs;
  for (let attempt = 0; ; attempt++) {
    // Let the subscriber catch up first without any lock, so writers wait only for the last tick.
    await waitForPosition(plan, conns.subscriber, await forceTick(conns.provider, plan.queue), opts);
    await waitForHolders(plan, captured, conns.lock, opts, round);
    const outcome = await lockAndSnapshot(plan, captured, conns, opts, round.report, pauseMs);
    if (outcome === 'snapshots') return;
    if (outcome === 'subscriber-slow') pauseMs = Math.min(opts.maxPauseCapMs, Math.round(pauseMs * 1.5));
    if (Date.now() > round.deadline) {
      if (round.canDefer) throw new Deferred(round.report);
      throw lockTimeout(plan, captured, opts, round, []);
    }
    await sleep(Math.min(1_000, 50 * 2 ** attempt));
  }
}

/**
 * One lock request, held at most `pauseMs` from the request: `snapshots` when
 * both snapshots were taken under it; otherwise the lock is released and the
 * answer says why.
 */
async function lockAndSnapshot(
  plan: PairPlan,
  captured: CapturedTable,
  conns: Connections,
  opts: Settings,
  report: LockReport,
  pauseMs: number,
): Promise<'snapshots' | 'lock-timeout' | 'subscriber-slow'> {
  const requested = performance.now();
  report.attempts++;
  const release = async (sql: 'COMMIT' | 'ROLLBACK') => {
    try {
      await conns.lock.query(sql);
    } finally {
      const ms = performance.now() - requested;
      report.pausedMs += ms;
      report.longestPauseMs = Math.max(report.longestPauseMs, ms);
    }
  };
  await conns.lock.query('BEGIN');
  try {
    // A partitioned table is locked with its partitions (writes go to them): no ONLY.
    const lockOnly = (await isPartitioned(conns.lock, captured.schema, captured.name)) ? '' : 'ONLY ';
    await conns.lock.query(sqlFormat(`LOCK TABLE ${lockOnly}%I.%I IN SHARE MODE`, captured.schema, captured.name));
  } catch (err) {
    await release('ROLLBACK');
    const code = (err as { code?: string }).code;
    if (code === '55P03') return 'lock-timeout';
    if (code === '42501') {
      throw new CompareError(
        'lock_not_permitted',
        `the role of node "${plan.providerNode}" may not lock ${displayQualified(captured.schema, captured.name)} in SHARE mode`,
        'connect as the table\'s owner, or GRANT it UPDATE, DELETE or TRUNCATE on the table',
      );
    }
    throw err;
  }
  try {
    const tick = await forceTick(conns.provider, plan.queue);
    if (!(await waitForPosition(plan, conns.subscriber, tick, opts, requested + pauseMs - SNAPSHOT_MARGIN_MS))) {
      await release('ROLLBACK');
      return 'subscriber-slow';
    }
    await Promise.all(
      [conns.subscriber, conns.provider].map(async (c) => {
        await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        await c.query('SELECT 1'); // the snapshot is taken by the first statement
      }),
    );
    await release('COMMIT');
    return 'snapshots';
  } catch (err) {
    await conns.lock.query('ROLLBACK').catch(() => undefined);
    await conns.provider.query('ROLLBACK').catch(() => undefined);
    await conns.subscriber.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** Lock modes another transaction may hold on the table that conflict with SHARE. */
const CONFLICTING_MODES = ['RowExclusiveLock', 'ShareUpdateExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock'];

const HOLDERS_SQL = `
  SELECT l.pid, p.gid, coalesce(a.usename, p.owner::text) AS "user", a.application_name, a.state,
         coalesce(a.xact_start, p.prepared) AS since
    FROM pg_catalog.pg_locks l
    LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
    LEFT JOIN pg_catalog.pg_prepared_xacts p ON l.pid IS NULL AND l.virtualtransaction LIKE '-1/%' AND p.transaction::text = pg_catalog.split_part(l.virtualtransaction, '/', 2)
   WHERE l.locktype = 'relation' AND l.granted
     AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
     AND l.relation = $1::regclass
     AND l.mode = ANY ($2::text[])
     AND l.pid IS DISTINCT FROM pg_catalog.pg_backend_pid()
   ORDER BY since NULLS FIRST, l.pid`;

/** The other transactions holding a lock on the table that a SHARE lock would queue behind. */
async function conflictingHolders(lock: pg.Client, captured: CapturedTable): Promise<BlockingTransaction[]> {
  const { rows } = await lock.query<{ pid: number | null; gid: string | null; user: string | null; application_name: string | null; state: string | null; since: Date | null }>(HOLDERS_SQL, [
    quoteQualified(captured.schema, captured.name),
    CONFLICTING_MODES,
  ]);
  const seen = new Set<string>();
  return rows.flatMap((r) => {
    const id = holderId(r.pid, r.gid);
    if (seen.has(id)) return [];
    seen.add(id);
    return [{ pid: r.pid, preparedGid: r.gid, user: r.user, applicationName: r.application_name, state: r.state, since: r.since }];
  });
}

function holderId(pid: number | null, gid: string | null): string {
  return pid !== null ? `pid ${pid}` : `prepared ${gid ?? '?'}`;
}

/** Waits, without queueing a lock request (so nobody waits for compare), until no other transaction holds the table. */
async function waitForHolders(plan: PairPlan, captured: CapturedTable, lock: pg.Client, opts: Settings, round: LockRound): Promise<void> {
  const lastSeen = new Map<string, number>();
  for (let poll = 0; ; poll++) {
    const holders = await conflictingHolders(lock, captured);
    if (!holders.length) return;
    const now = performance.now();
    // A holder's waiting time runs only between polls that both saw it (short writers come and go).
    const present = new Set(holders.map((h) => holderId(h.pid, h.preparedGid)));
    for (const id of [...lastSeen.keys()]) if (!present.has(id)) lastSeen.delete(id);
    for (const h of holders) {
      const id = holderId(h.pid, h.preparedGid);
      const entry = round.report.waited.get(id) ?? { ...h, waitedMs: 0 };
      entry.waitedMs += now - (lastSeen.get(id) ?? now);
      lastSeen.set(id, now);
      round.report.waited.set(id, entry);
    }
    round.progress({ rowsDone: 0, chunksDone: 0, waitingFor: holders });
    if (Date.now() > round.deadline) {
      if (round.canDefer) throw new Deferred(round.report);
      throw lockTimeout(plan, captured, opts, round, holders);
    }
    await sleep(Math.min(500, 20 * 2 ** poll));
  }
}

/** The error when a table could not be locked within lockWaitMs, naming what held it. */
function lockTimeout(plan: PairPlan, captured: CapturedTable, opts: Settings, round: LockRound, holders: BlockingTransaction[]): CompareError {
  const label = displayQualified(captured.schema, captured.name);
  const seconds = Math.round(opts.lockWaitMs / 1000);
  if (holders.length) {
    return new CompareError(
      'lock_timeout',
      `could not lock ${label} on node "${plan.providerNode}" within ${seconds} s without holding up its writers: ${holders.map(describeHolder).join('; ')} kept a lock on it`,
      'let that transaction finish (or end it: pg_stat_activity, pg_prepared_xacts), then compare again; --lock-wait waits longer',
    );
  }
  return new CompareError(
    'lock_timeout',
    `could not take a consistency point for ${label} on node "${plan.providerNode}" within ${seconds} s: ${round.report.attempts} lock attempts, each released after ${opts.maxPauseMs}–${opts.maxPauseCapMs} ms (the subscriber "${plan.subscriberNode}" did not apply the tick in time, or writers kept beginning)`,
    'check that the apply worker keeps up (pgconvey status), then compare again; --lock-wait tries longer',
  );
}

/** `transaction PID 4242 (app "billing", user alice, idle in transaction, since 2024-05-01T10:00:00.000Z)` */
export function describeHolder(h: BlockingTransaction): string {
  const what = h.pid !== null ? `transaction PID ${h.pid}` : `prepared transaction "${h.preparedGid ?? '?'}"`;
  const details = [
    h.applicationName ? `application "${h.applicationName}"` : null,
    h.user ? `user ${h.user}` : null,
    h.state,
    h.since ? `since ${h.since.toISOString()}` : null,
  ].filter(Boolean);
  return details.length ? `${what} (${details.join(', ')})` : what;
}

/**
 * Waits until the subscription has applied `tick`. Without a deadline it fails
 * when the position stops moving for applyStallMs; with one (performance.now()
 * time, while compare holds a lock) it polls faster and answers false once it
 * has passed.
 */
async function waitForPosition(plan: PairPlan, subscriber: pg.Client, tick: string, opts: Settings, deadline?: number): Promise<boolean> {
  let last: string | null | undefined;
  let movedAt = Date.now();
  for (;;) {
    const { rows } = await subscriber.query<{ tick: string | null }>(
      'SELECT completed_tick::text AS tick FROM pgconvey.subscription WHERE queue_name = $1 AND consumer_name = $2',
      [plan.queue, plan.consumer],
    );
    const position = rows[0]?.tick ?? null;
    if (position !== null && BigInt(position) >= BigInt(tick)) return true;
    if (deadline !== undefined) {
      if (performance.now() >= deadline) return false;
      await sleep(Math.max(0, Math.min(5, deadline - performance.now())));
      continue;
    }
    if (position !== last) {
      last = position;
      movedAt = Date.now();
    } else if (Date.now() - movedAt > opts.applyStallMs) {
      throw new CompareError(
        'no_apply_worker',
        `no apply worker is advancing subscription "${plan.consumer}" of queue "${plan.queue}" on ${plan.subscriberDb.display}: it stayed at tick ${position ?? 'none'} for ${Math.round(opts.applyStallMs / 1000)} s while compare waited for tick ${tick}`,
        'start it (`pgconvey run FILE`, or `pgconvey engine worker …`), then compare again',
      );
    }
    await sleep(20);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function sameSummary(a: RangeSummary, b: RangeSummary): boolean {
  return a.rows === b.rows && a.checksum === b.checksum;
}

/**
 * Compares key ranges of one table inside the two snapshots; a range that
 * differs is split in the provider's key order until it is small, then read
 * key by key.
 */
class RangeComparer {
  providerRows = 0;
  subscriberRows = 0;
  readonly differing: DifferingRange[] = [];
  moreDiffering = 0;

  constructor(
    private readonly conns: Connections,
    private readonly shapes: { provider: TableShape; subscriber: TableShape },
    private readonly keyColumns: string[],
    private readonly opts: Settings,
  ) {}

  async compareChunk(range: KeyRange): Promise<void> {
    const [p, s] = await this.summarize(range);
    this.providerRows += p.rows;
    this.subscriberRows += s.rows;
    if (sameSummary(p, s)) return;
    if (this.differing.length >= this.opts.maxRanges) this.moreDiffering++;
    else await this.narrow(range, p, s);
  }

  private summarize(range: KeyRange): Promise<[RangeSummary, RangeSummary]> {
    return Promise.all([summarizeRange(this.conns.provider, this.shapes.provider, range), summarizeRange(this.conns.subscriber, this.shapes.subscriber, range)]);
  }

  private async narrow(range: KeyRange, p: RangeSummary, s: RangeSummary): Promise<void> {
    if (p.rows <= this.opts.narrowRows) {
      if (this.differing.length >= this.opts.maxRanges) this.moreDiffering++;
      else this.differing.push(await this.diffRows(range, s.rows));
      return;
    }
    const step = Math.ceil(p.rows / SPLIT_FANOUT);
    const cuts: KeyTuple[] = [];
    for (let offset = step - 1; offset < p.rows - 1; offset += step) {
      const key = await keyAtOffset(this.conns.provider, this.shapes.provider, range, offset);
      if (key) cuts.push(key);
    }
    const bounds = [range.after, ...cuts, range.through];
    for (let i = 0; i + 1 < bounds.length; i++) {
      const piece = { after: bounds[i]!, through: bounds[i + 1]! };
      const [pp, sp] = await this.summarize(piece);
      if (!sameSummary(pp, sp)) await this.narrow(piece, pp, sp);
    }
  }

  /** Reads key and row digest of a small range on both sides and names the keys that differ. */
  private async diffRows(range: KeyRange, subscriberRows: number): Promise<DifferingRange> {
    const subscriberLimit = this.opts.narrowRows * 100;
    const [pRows, sRead] = await Promise.all([
      rowDigests(this.conns.provider, this.shapes.provider, range, this.opts.narrowRows),
      rowDigests(this.conns.subscriber, this.shapes.subscriber, range, subscriberLimit),
    ]);
    // The subscriber's keys as the provider prints the same typed values, so that both are matched in one form.
    const sKeys = await canonicalKeys(this.conns.provider, this.shapes.provider, sRead.map((r) => r.key));
    const sRows = sRead.map((r, i) => ({ key: sKeys[i]!, digest: r.digest }));
    const provider = new Map(pRows.map((r) => [JSON.stringify(r.key), r.digest]));
    const matched = new Set<string>();
    const extra: KeyTuple[] = [];
    const changed: KeyTuple[] = [];
    for (const r of sRows) {
      const id = JSON.stringify(r.key);
      const digest = provider.get(id);
      if (digest === undefined || matched.has(id)) extra.push(r.key);
      else {
        matched.add(id);
        if (digest !== r.digest) changed.push(r.key);
      }
    }
    // Rows past the subscriber's limit count as extra; which provider keys are missing is then unknown.
    const unread = subscriberRows - sRows.length;
    const missing = unread > 0 ? [] : pRows.filter((r) => !matched.has(JSON.stringify(r.key))).map((r) => r.key);
    // Each list is in key order already (both sides were read in it); the range runs from the first to the last of them.
    const ends = await sortKeys(this.conns.provider, this.shapes.provider, [missing, extra, changed].flatMap((keys) => (keys.length ? [keys[0]!, keys[keys.length - 1]!] : [])));
    const first = ends[0] ?? range.after ?? [];
    const last = ends[ends.length - 1] ?? range.through ?? [];
    const listed = (keys: KeyTuple[]) => keys.slice(0, this.opts.listLimit).map((k) => this.keyValues(k));
    return {
      from: this.keyValues(first),
      to: this.keyValues(last),
      providerRows: pRows.length,
      subscriberRows,
      missing: listed(missing),
      extra: listed(extra),
      changed: listed(changed),
      missingCount: missing.length,
      extraCount: extra.length + unread,
      changedCount: changed.length,
    };
  }

  private keyValues(key: KeyTuple): KeyValues {
    return Object.fromEntries(key.map((v, i) => [this.keyColumns[i]!, v]));
  }
}
