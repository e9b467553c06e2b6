/**
 * compare: proves a subscriber's copy of each replicated table equals the
 * provider's, at the same queue position. Per table: lock it on the provider
 * in SHARE mode (writers of that table wait), force a tick T, wait until the
 * subscriber has applied T, take a REPEATABLE READ snapshot on both sides,
 * release the lock — both snapshots now hold the same state of the table.
 * Then count and checksum the table in key-range chunks on both sides, and
 * narrow every chunk that differs down to the exact keys.
 */
import format from 'pg-format';
import type pg from 'pg';
import { introspectNode, type EngineQueueInfo, type NodeCatalog } from '../catalog/index.js';
import { displayQualified, type DatabaseSpec, type DesiredState, type NodeSpec, type QueueSpec } from '../config/index.js';
import { connect } from '../db/index.js';
import { forceTick } from '../engine/index.js';
import { closest } from '../kernel/index.js';
import { TableNameError, parseTableName } from './table-name.js';
import {
  TEXT_OUTPUT_SETTINGS_SQL,
  keyAtOffset,
  readColumns,
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
  /** lock_timeout of each attempt to lock a table on the provider. */
  lockTimeoutMs?: number;
  lockAttempts?: number;
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
  lockTimeoutMs: 2_000,
  lockAttempts: 5,
  applyStallMs: 30_000,
};

export interface CompareProgress {
  queue: string;
  node: string;
  table: string;
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
  queue: string;
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
  /** How long writers of the table were blocked on the provider (lock requested → released). */
  writersPausedMs: number | null;
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

/** One provider → subscriber pair of a queue, and the tables to compare on it. */
interface PairPlan {
  queue: QueueSpec;
  root: NodeSpec;
  leaf: NodeSpec;
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
  const pairs = selectPairs(state, options);
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

async function readCatalogs(state: DesiredState, pairs: Array<{ root: NodeSpec; leaf: NodeSpec }>): Promise<Map<string, NodeCatalog>> {
  const names = [...new Set(pairs.flatMap((p) => [p.root.database, p.leaf.database]))];
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
  pairs: Array<{ queue: QueueSpec; root: NodeSpec; leaf: NodeSpec }>,
  catalogs: Map<string, NodeCatalog>,
  wanted: Array<{ schema: string; name: string }>,
): PairPlan[] {
  const plans: PairPlan[] = [];
  for (const { queue, root, leaf } of pairs) {
    const providerCatalog = catalogs.get(root.database)!;
    const subscriberCatalog = catalogs.get(leaf.database)!;
    const engineQueue = providerCatalog.engine?.queues.find((q) => q.name === queue.name);
    if (!engineQueue) {
      throw new CompareError('queue_not_set_up', `queue "${queue.name}" is not set up on its root node "${root.name}"`, 'run `pgconvey apply` with this file first');
    }
    const subscription = subscriberCatalog.engine?.subscriptions.find((s) => s.queue === queue.name && s.consumer === leaf.name);
    if (!subscription) {
      throw new CompareError('not_subscribed', `node "${leaf.name}" is not subscribed to queue "${queue.name}"`, 'run `pgconvey apply` with this file first');
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
    plans.push({ queue, root, leaf, providerDb: databaseOf(desired, root.database), subscriberDb: databaseOf(desired, leaf.database), providerCatalog, tables });
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

async function comparePair(plan: PairPlan, opts: Settings): Promise<TableComparison[]> {
  const base = (t: PlannedTable) => ({
    queue: plan.queue.name,
    node: plan.leaf.name,
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
    for (const c of [conns.provider, conns.subscriber]) await c.query(TEXT_OUTPUT_SETTINGS_SQL);
    const out: TableComparison[] = [];
    for (const t of plan.tables) {
      if (t.state !== 'ok') out.push(notCompared(t));
      else out.push({ ...base(t), ...(await compareTable(plan, t, conns, opts)) });
    }
    return out;
  } finally {
    await Promise.all(opened.map((c) => c.end().catch(() => undefined)));
  }
}

type Measured = Omit<TableComparison, 'queue' | 'node' | 'provider' | 'subscriber' | 'table' | 'keyColumns' | 'state'>;

async function compareTable(plan: PairPlan, t: PlannedTable, conns: Connections, opts: Settings): Promise<Measured> {
  const started = Date.now();
  const shapes = await tableShapes(plan, t.captured, conns);
  const table = displayQualified(t.captured.schema, t.captured.name);
  // Let the subscriber catch up first without any lock, so writers wait only for the last tick.
  await waitForPosition(plan, conns.subscriber, await forceTick(conns.provider, plan.queue.name), opts);
  const writersPausedMs = await takeSnapshotsAtOnePosition(plan, t.captured, conns, opts);
  try {
    const ranges = new RangeComparer(conns, shapes, t.captured.keyColumns, opts);
    let after: KeyTuple | null = null;
    let chunks = 0;
    for (;;) {
      const through = await keyAtOffset(conns.provider, shapes.provider, { after, through: null }, opts.chunkRows - 1);
      await ranges.compareChunk({ after, through });
      chunks++;
      opts.onProgress?.({
        queue: plan.queue.name,
        node: plan.leaf.name,
        table,
        rowsDone: ranges.providerRows,
        rowsEstimated: t.estimatedRows,
        chunksDone: chunks,
        seconds: (Date.now() - started) / 1000,
      });
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
      writersPausedMs,
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
  const [pCols, sCols] = await Promise.all([
    readColumns(conns.provider, captured.schema, captured.name),
    readColumns(conns.subscriber, captured.schema, captured.name),
  ]);
  const label = displayQualified(captured.schema, captured.name);
  const missingKeys = captured.keyColumns.filter((k) => !pCols.has(k) || !sCols.has(k));
  if (missingKeys.length) {
    throw new CompareError(
      'key_columns_missing',
      `key column(s) ${missingKeys.join(', ')} of ${label} are missing on ${sCols.size ? `node "${plan.leaf.name}" or the root` : `node "${plan.leaf.name}" (the table is gone)`}`,
      'make the table match on both sides (pgconvey plan shows the differences)',
    );
  }
  const columns = captured.columns.filter((c) => pCols.has(c) && sCols.has(c));
  const shape = (cols: Map<string, { type: string; collatable: boolean }>): TableShape => ({
    schema: captured.schema,
    name: captured.name,
    keys: captured.keyColumns.map((k) => ({ name: k, ...cols.get(k)! })),
    columns,
    floats: new Map(columns.flatMap((c) => (cols.get(c)!.type === 'real' || cols.get(c)!.type === 'double precision' ? [[c, cols.get(c)!.type as 'real' | 'double precision']] : []))),
  });
  return { provider: shape(pCols), subscriber: shape(sCols) };
}

/**
 * Londiste's method: with the table locked in SHARE mode on the provider (its
 * writers wait; every earlier writer has committed), force a tick T and wait
 * until the subscriber has applied T — it then holds every change of the
 * table, and no later one exists yet. Snapshots taken on both sides before the
 * lock is released therefore show the same state of the table, whatever the
 * worker applies afterwards. Leaves both work sessions in their REPEATABLE
 * READ snapshot; returns how long the table's writers were held up.
 */
async function takeSnapshotsAtOnePosition(plan: PairPlan, captured: CapturedTable, conns: Connections, opts: Settings): Promise<number> {
  const requested = Date.now();
  await lockTable(plan, captured, conns.lock, opts);
  try {
    const tick = await forceTick(conns.provider, plan.queue.name);
    await waitForPosition(plan, conns.subscriber, tick, opts);
    for (const c of [conns.subscriber, conns.provider]) {
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await c.query('SELECT 1'); // the snapshot is taken by the first statement
    }
    await conns.lock.query('COMMIT');
    return Date.now() - requested;
  } catch (err) {
    await conns.lock.query('ROLLBACK').catch(() => undefined);
    await conns.provider.query('ROLLBACK').catch(() => undefined);
    await conns.subscriber.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** Opens a transaction on `lock` holding the table's SHARE lock; retries when a long writer keeps it past lock_timeout. */
async function lockTable(plan: PairPlan, captured: CapturedTable, lock: pg.Client, opts: Settings): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    await lock.query('BEGIN');
    try {
      await lock.query("SELECT pg_catalog.set_config('lock_timeout', $1, true)", [`${opts.lockTimeoutMs}ms`]);
      await lock.query(format('LOCK TABLE %I.%I IN SHARE MODE', captured.schema, captured.name));
      return;
    } catch (err) {
      await lock.query('ROLLBACK');
      const code = (err as { code?: string }).code;
      if (code === '42501') {
        throw new CompareError(
          'lock_not_permitted',
          `the role of the root "${plan.root.name}" may not lock ${displayQualified(captured.schema, captured.name)} in SHARE mode`,
          'connect as the table\'s owner, or GRANT it UPDATE, DELETE or TRUNCATE on the table',
        );
      }
      if (code !== '55P03') throw err;
      if (attempt >= opts.lockAttempts) {
        throw new CompareError(
          'lock_timeout',
          `could not lock ${displayQualified(captured.schema, captured.name)} in SHARE mode on the root "${plan.root.name}" (${opts.lockAttempts} attempts of ${opts.lockTimeoutMs} ms): transactions writing to it stay open`,
          'look for long transactions in pg_stat_activity, then compare again',
        );
      }
      await sleep(100 * attempt);
    }
  }
}

/** Waits until the subscription has applied `tick`; fails when its position stops moving for applyStallMs. */
async function waitForPosition(plan: PairPlan, subscriber: pg.Client, tick: string, opts: Settings): Promise<void> {
  let last: string | null | undefined;
  let movedAt = Date.now();
  for (;;) {
    const { rows } = await subscriber.query<{ tick: string | null }>(
      'SELECT completed_tick::text AS tick FROM pgconvey.subscription WHERE queue_name = $1 AND consumer_name = $2',
      [plan.queue.name, plan.leaf.name],
    );
    const position = rows[0]?.tick ?? null;
    if (position !== null && BigInt(position) >= BigInt(tick)) return;
    if (position !== last) {
      last = position;
      movedAt = Date.now();
    } else if (Date.now() - movedAt > opts.applyStallMs) {
      throw new CompareError(
        'no_apply_worker',
        `no apply worker is advancing subscription "${plan.leaf.name}" of queue "${plan.queue.name}" on ${plan.subscriberDb.display}: it stayed at tick ${position ?? 'none'} for ${Math.round(opts.applyStallMs / 1000)} s while compare waited for tick ${tick}`,
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
    const [pRows, sRows] = await Promise.all([
      rowDigests(this.conns.provider, this.shapes.provider, range, this.opts.narrowRows),
      rowDigests(this.conns.subscriber, this.shapes.subscriber, range, subscriberLimit),
    ]);
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
