/**
 * Switchover: the upgrade's last step, and its way back. `--to NEW` (a leaf
 * of the queue's root OLD) checks the preconditions, fences writes on OLD,
 * drains the queue to NEW, moves NEW's sequences past OLD's, compares row
 * counts, optionally sets up reverse replication NEW → OLD, and hands NEW
 * over. `--to OLD` undoes it over the reverse queue. Every step is
 * idempotent, so an interrupted switchover is finished by running it again.
 * Results are plain data with per-step timings; render turns them into text.
 */
import format from 'pg-format';
import type pg from 'pg';
import type { DatabaseSpec, DesiredState, NodeSpec, QueueSpec } from '../config/index.js';
import { connect } from '../db/index.js';
import {
  ApplyWorker,
  ENGINE_CONTENT,
  ENGINE_VERSION,
  WorkerBusyError,
  addSequence,
  addSubscriberTable,
  addTable,
  createQueue,
  dropQueue,
  forceTick,
  installedEngine,
  shortContent,
  queueStatus,
  registerConsumer,
  syncSequences,
  tableStatus,
  unregisterConsumer,
} from '../engine/index.js';
import { closest } from '../kernel/index.js';

export interface SwitchoverOptions {
  /** The queue to switch; may be left out when the file has one queue. */
  queue?: string;
  /** The node that becomes writable: a leaf of the root (forward), or the root (rollback). */
  to: string;
  /** Set up replication from the new node back to the old one (forward only). */
  reverse: boolean;
  maxLagMs: number;
  /** Sequences on the new node end this many increments past the old node's values. */
  sequenceMargin: number;
  /**
   * `counts`: compare row counts of every table inside the write window (a count(*) per table on
   * both sides: it grows with the data, ~0.3 s for 2M rows here). `none`: skip it — for large
   * databases, after a `pgconvey compare` shortly before.
   */
  verify?: 'counts' | 'none';
  /** How long to wait for sessions to end and for the queue to drain. */
  timeoutMs: number;
}

export const SWITCHOVER_DEFAULTS = { maxLagMs: 5_000, sequenceMargin: 1_000, timeoutMs: 60_000 } as const;

export type StepName = 'preconditions' | 'fence' | 'drain' | 'sequences' | 'verify' | 'reverse' | 'handover' | 'drop-reverse';

export interface StepReport {
  step: StepName;
  ms: number;
  detail: string;
}

export interface EndedSession {
  pid: number;
  user: string | null;
  applicationName: string;
  clientAddress: string | null;
  state: string | null;
  transactionStart: Date | null;
}

export interface TableCount {
  table: string;
  from: number;
  to: number;
}

export interface NodeRef {
  node: string;
  database: string;
  /** Password-free `user@host:port/dbname`. */
  display: string;
}

export interface SwitchoverReport {
  queue: string;
  direction: 'forward' | 'rollback';
  /** The node that was writable (and is fenced afterwards). */
  from: NodeRef;
  /** The node that is writable afterwards. */
  to: NodeRef;
  outcome: 'switched' | 'already-done';
  /** Why nothing was done, for `already-done`. */
  note: string | null;
  steps: StepReport[];
  endedSessions: EndedSession[];
  drainTick: string | null;
  drainedBy: 'running-worker' | 'switchover' | null;
  sequences: number;
  tables: TableCount[];
  /** The reverse replication set up (forward) or dropped (rollback). */
  reverse: { queue: string; consumer: string; provider: string; tables: number; sequences: number } | null;
  /** From the fence to the hand-over: how long no node took writes. */
  writeUnavailableMs: number | null;
}

export class SwitchoverError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly hint: string,
    /** What was done before the error, when anything was. */
    readonly report: SwitchoverReport | null = null,
  ) {
    super(message);
    this.name = 'SwitchoverError';
  }
}

export interface SwitchoverHooks {
  onStep?(step: StepReport, report: SwitchoverReport): void;
  /** Asked after the preconditions pass, before anything changes; false cancels. */
  confirm?(report: SwitchoverReport): Promise<boolean>;
}

/** The name of the reverse queue of `queue`: `<queue>_reverse`, cut to the 63 characters a queue name may have. */
export function reverseQueueName(queue: string): string {
  return `${queue.slice(0, 63 - '_reverse'.length)}_reverse`;
}

interface Topology {
  queue: QueueSpec;
  root: NodeSpec;
  leaves: NodeSpec[];
  target: NodeSpec;
}

/** Finds the queue and the target node in the file, or says what to write instead. */
export function resolveTarget(state: DesiredState, options: Pick<SwitchoverOptions, 'queue' | 'to'>): Topology {
  const names = state.queues.map((q) => q.name);
  let queue: QueueSpec | undefined;
  if (options.queue === undefined) {
    if (state.queues.length !== 1) throw new SwitchoverError('switchover_queue_needed', `${state.file} has ${state.queues.length} queues`, `name one with --queue (${names.join(', ')})`);
    queue = state.queues[0]!;
  } else {
    queue = state.queues.find((q) => q.name === options.queue);
    if (!queue) {
      const guess = closest(options.queue, names);
      throw new SwitchoverError('unknown_queue', `queue "${options.queue}" is not in ${state.file}`, guess ? `did you mean "${guess}"?` : `queues: ${names.join(', ')}`);
    }
  }
  const root = queue.nodes.find((n) => n.type === 'root')!;
  const leaves = queue.nodes.filter((n) => n.type === 'leaf' && n.provider === root.name);
  const target = queue.nodes.find((n) => n.name === options.to);
  if (!target) {
    const guess = closest(options.to, queue.nodes.map((n) => n.name));
    throw new SwitchoverError('unknown_node', `queue "${queue.name}" has no node "${options.to}"`, guess ? `did you mean "${guess}"?` : `nodes: ${queue.nodes.map((n) => n.name).join(', ')}`);
  }
  if (target !== root && !leaves.includes(target)) {
    throw new SwitchoverError('switchover_target_not_leaf', `node "${target.name}" is not a leaf of the root "${root.name}"`, `switch over to a leaf whose provider is "${root.name}", or back to "${root.name}"`);
  }
  return { queue, root, leaves, target };
}

/** Runs a switchover (forward to a leaf, or back to the root) as the file describes it. */
export async function switchover(state: DesiredState, options: SwitchoverOptions, hooks: SwitchoverHooks = {}): Promise<SwitchoverReport> {
  const topology = resolveTarget(state, options);
  const db = (node: NodeSpec) => state.databases.find((d) => d.name === node.database)!;
  const old = await connect(db(topology.root).connection, 'switchover');
  const opened: pg.Client[] = [old];
  try {
    if (topology.target !== topology.root) {
      const neu = await connect(db(topology.target).connection, 'switchover');
      opened.push(neu);
      const run = new Run(topology, options, hooks, 'forward', ref(topology.root, db(topology.root)), ref(topology.target, db(topology.target)));
      return await run.forward(old, neu, db(topology.root), db(topology.target));
    }
    const leaf = await switchedLeaf(topology, old, db, opened);
    const run = new Run(topology, options, hooks, 'rollback', ref(leaf.node, db(leaf.node)), ref(topology.root, db(topology.root)));
    return await run.rollback(old, leaf.client, db(topology.root), db(leaf.node));
  } finally {
    await Promise.all(opened.map((c) => c.end().catch(() => undefined)));
  }
}

function ref(node: NodeSpec, database: DatabaseSpec): NodeRef {
  return { node: node.name, database: database.name, display: database.display };
}

/** For a rollback: the leaf the queue was switched over to (its reverse replication names it), connected. */
async function switchedLeaf(t: Topology, old: pg.Client, db: (n: NodeSpec) => DatabaseSpec, opened: pg.Client[]): Promise<{ node: NodeSpec; client: pg.Client }> {
  await requireEngine(old, t.root);
  const row = await reverseSubscription(old, reverseQueueName(t.queue.name), t.root.name);
  const candidates = row ? t.leaves.filter((l) => l.database === row.provider_database) : t.leaves;
  for (const node of candidates) {
    const client = await connect(db(node).connection, 'switchover');
    opened.push(client);
    if (row || candidates.length === 1 || (await switchedOverAt(client, t.queue.name, node.name))) return { node, client };
  }
  throw new SwitchoverError('switchover_no_leaf', `queue "${t.queue.name}" has no leaf to switch back from`, 'check the file: the node the queue was switched over to must still be a leaf of the root');
}

async function requireEngine(client: pg.Client, node: NodeSpec): Promise<void> {
  const installed = await installedEngine(client);
  if (installed === null || installed.version < ENGINE_VERSION || (installed.version === ENGINE_VERSION && installed.content !== ENGINE_CONTENT)) {
    throw new SwitchoverError(
      'switchover_engine_outdated',
      `the pgconvey engine in database "${node.database}" (node "${node.name}") is ${installed === null ? 'not installed' : `version ${installed.version} (content ${shortContent(installed.content)})`}; switchover needs version ${ENGINE_VERSION} (content ${shortContent(ENGINE_CONTENT)})`,
      'run `pgconvey apply FILE` to install or upgrade it, then switch over',
    );
  }
}

async function switchedOverAt(client: pg.Client, queue: string, consumer: string): Promise<Date | null> {
  const { rows } = await client.query<{ at: Date | null }>('SELECT switched_over_at AS at FROM pgconvey.subscription WHERE queue_name = $1 AND consumer_name = $2', [queue, consumer]);
  return rows[0]?.at ?? null;
}

async function reverseSubscription(client: pg.Client, queue: string, consumer: string): Promise<{ provider_database: string } | undefined> {
  const { rows } = await client.query<{ provider_database: string }>(
    'SELECT provider_database FROM pgconvey.subscription WHERE queue_name = $1 AND consumer_name = $2 AND provider_database IS NOT NULL',
    [queue, consumer],
  );
  return rows[0];
}

/** True when the database's sessions start read-only (`ALTER DATABASE … SET default_transaction_read_only = on`). */
async function isFenced(client: pg.Client): Promise<boolean> {
  const { rows } = await client.query<{ fenced: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_db_role_setting s JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase
                     CROSS JOIN LATERAL unnest(s.setconfig) c
                    WHERE d.datname = current_database() AND s.setrole = 0
                      AND lower(c) IN ('default_transaction_read_only=on', 'default_transaction_read_only=true', 'default_transaction_read_only=1')) AS fenced`,
  );
  return rows[0]!.fenced;
}

async function currentDatabase(client: pg.Client): Promise<string> {
  return (await client.query<{ db: string }>('SELECT current_database() AS db')).rows[0]!.db;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One switchover in one direction: the steps, their timings, and the report they fill in. */
class Run {
  readonly report: SwitchoverReport;
  private fencedAt: number | null = null;

  constructor(
    private readonly t: Topology,
    private readonly options: SwitchoverOptions,
    private readonly hooks: SwitchoverHooks,
    direction: 'forward' | 'rollback',
    from: NodeRef,
    to: NodeRef,
  ) {
    this.report = {
      queue: t.queue.name,
      direction,
      from,
      to,
      outcome: 'switched',
      note: null,
      steps: [],
      endedSessions: [],
      drainTick: null,
      drainedBy: null,
      sequences: 0,
      tables: [],
      reverse: null,
      writeUnavailableMs: null,
    };
  }

  /** Runs a step, timing it; errors carry the report so far. */
  private async step<T>(name: StepName, body: () => Promise<{ value: T; detail: string }>): Promise<T> {
    const started = performance.now();
    try {
      const { value, detail } = await body();
      const done = { step: name, ms: Math.round(performance.now() - started), detail };
      this.report.steps.push(done);
      this.hooks.onStep?.(done, this.report);
      return value;
    } catch (err) {
      if (err instanceof SwitchoverError) throw new SwitchoverError(err.code, err.message, err.hint, this.report);
      const sqlState = (err as { code?: unknown }).code;
      if (typeof sqlState !== 'string' || !/^[0-9A-Z]{5}$/.test(sqlState)) throw err;
      throw new SwitchoverError(
        'switchover_step_failed',
        `step ${name} failed: ${(err as Error).message} (SQLSTATE ${sqlState})`,
        this.fencedAt === null ? 'nothing was changed; fix the cause and run the switchover again' : 'writes stay fenced; fix the cause and run the switchover again (every step resumes)',
        this.report,
      );
    }
  }

  private alreadyDone(note: string): SwitchoverReport {
    this.report.outcome = 'already-done';
    this.report.note = note;
    return this.report;
  }

  private async confirm(): Promise<void> {
    if (this.hooks.confirm && !(await this.hooks.confirm(this.report))) {
      throw new SwitchoverError('switchover_cancelled', 'switchover cancelled; nothing was changed', 'run it again and answer "yes", or pass --auto-approve');
    }
  }

  private finish(): SwitchoverReport {
    this.report.writeUnavailableMs = this.fencedAt === null ? null : Math.round(performance.now() - this.fencedAt);
    return this.report;
  }

  async forward(old: pg.Client, neu: pg.Client, oldDb: DatabaseSpec, newDb: DatabaseSpec): Promise<SwitchoverReport> {
    const queue = this.t.queue.name;
    const consumer = this.t.target.name;
    await requireEngine(old, this.t.root);
    await requireEngine(neu, this.t.target);
    const at = await switchedOverAt(neu, queue, consumer);
    if (at) {
      const reverse = await reverseSubscription(old, reverseQueueName(queue), this.t.root.name);
      const missing = this.options.reverse && !reverse ? ' (without reverse replication; --reverse cannot be added afterwards)' : '';
      return this.alreadyDone(`queue "${queue}" was switched over to "${consumer}" at ${at.toISOString()}${missing}; nothing to do`);
    }

    const tables = await this.step('preconditions', async () => {
      const status = await queueStatus(old, queue);
      const position = status.find((s) => s.consumer === consumer);
      if (!position || !(await subscribed(neu, queue, consumer))) {
        throw new SwitchoverError('switchover_not_subscribed', `node "${consumer}" is not a subscriber of queue "${queue}"`, 'run `pgconvey apply FILE`, then let the worker copy and catch up');
      }
      const tables = await okTables(neu, queue, consumer);
      const resuming = await isFenced(old);
      const lag = resuming ? 0 : await lagMs(old, queue, position.consumerTick!);
      if (lag > this.options.maxLagMs) {
        throw new SwitchoverError('switchover_lag_too_high', `node "${consumer}" is ${Math.round(lag)} ms behind queue "${queue}" (--max-lag ${this.options.maxLagMs} ms)`, 'make sure the ticker and the worker run, wait until the lag is small, or raise --max-lag');
      }
      if (this.options.reverse) await checkReversible(old, neu, queue, tables);
      return { value: tables, detail: `${tables.length} tables ok, lag ${Math.round(lag)} ms${resuming ? ' (resuming: writes already fenced)' : ''}` };
    });
    await this.confirm();

    await this.fence(old, oldDb);
    await this.drain(old, neu, oldDb, newDb, queue, consumer);
    await this.step('sequences', async () => {
      this.report.sequences = await syncSequences(old, neu, queue, this.options.sequenceMargin);
      return { value: null, detail: `${this.report.sequences} sequences on "${consumer}" moved past "${this.t.root.name}" + ${this.options.sequenceMargin}` };
    });
    await this.verify(old, neu, tables, oldDb);
    if (this.options.reverse) {
      await this.step('reverse', async () => {
        this.report.reverse = await setUpReverse(old, neu, this.t, newDb, tables);
        return { value: null, detail: `queue "${this.report.reverse.queue}" on "${consumer}": ${this.report.reverse.tables} tables, ${this.report.reverse.sequences} sequences, consumer "${this.report.reverse.consumer}"` };
      });
    }
    await this.step('handover', async () => {
      await inTransaction(neu, async () => {
        await neu.query(format('ALTER DATABASE %I RESET default_transaction_read_only', await currentDatabase(neu)));
        await neu.query('UPDATE pgconvey.subscription SET switched_over_at = now() WHERE queue_name = $1 AND consumer_name = $2', [queue, consumer]);
      });
      return { value: null, detail: `"${consumer}" (${newDb.display}) takes writes` };
    });
    return this.finish();
  }

  async rollback(old: pg.Client, neu: pg.Client, oldDb: DatabaseSpec, newDb: DatabaseSpec): Promise<SwitchoverReport> {
    const forwardQueue = this.t.queue.name;
    const leaf = this.report.from.node;
    const queue = reverseQueueName(forwardQueue);
    const consumer = this.t.root.name;
    await requireEngine(neu, this.t.leaves.find((l) => l.name === leaf)!);
    const row = await reverseSubscription(old, queue, consumer);
    const at = await switchedOverAt(neu, forwardQueue, leaf);
    if (!row) {
      if (at) {
        throw new SwitchoverError(
          'switchover_no_reverse',
          `queue "${forwardQueue}" was switched over to "${leaf}" without reverse replication: switching back would lose every write made on "${leaf}" since ${at.toISOString()}`,
          `copy those writes to "${this.t.root.name}" yourself first; a switchover with --reverse keeps "${this.t.root.name}" up to date`,
        );
      }
      if (await isFenced(old)) {
        throw new SwitchoverError(
          'switchover_interrupted',
          `"${this.t.root.name}" is fenced but queue "${forwardQueue}" was never handed over to "${leaf}": a switchover stopped half way`,
          `finish it with \`pgconvey switchover FILE --to ${leaf}\`, or lift the fence (in a session of that database, which starts read-only): SET default_transaction_read_only = off; ALTER DATABASE ${format('%I', await currentDatabase(old))} RESET default_transaction_read_only;`,
        );
      }
      return this.alreadyDone(`"${this.t.root.name}" is already the writable node of queue "${forwardQueue}"; nothing to do`);
    }

    const reverseExists = (await neu.query('SELECT 1 FROM pgconvey.queue WHERE queue_name = $1', [queue])).rowCount! > 0;
    const tables = await this.step('preconditions', async () => {
      const tables = await okTables(old, queue, consumer);
      let lag = 0;
      const resuming = !reverseExists || (await isFenced(neu));
      if (!resuming) {
        const position = (await queueStatus(neu, queue)).find((s) => s.consumer === consumer);
        if (!position) throw new SwitchoverError('switchover_not_subscribed', `"${consumer}" is not a consumer of the reverse queue "${queue}" on "${leaf}"`, 'switch over again with --reverse, or repair the reverse queue by hand');
        lag = await lagMs(neu, queue, position.consumerTick!);
      }
      if (lag > this.options.maxLagMs) {
        throw new SwitchoverError('switchover_lag_too_high', `"${consumer}" is ${Math.round(lag)} ms behind the reverse queue "${queue}" (--max-lag ${this.options.maxLagMs} ms)`, 'make sure the reverse ticker and worker run, wait until the lag is small, or raise --max-lag');
      }
      return { value: tables, detail: `${tables.length} tables ok, lag ${Math.round(lag)} ms${resuming ? ' (resuming)' : ''}` };
    });
    await this.confirm();

    await this.fence(neu, newDb);
    if (reverseExists) {
      await this.drain(neu, old, newDb, oldDb, queue, consumer);
      await this.step('sequences', async () => {
        this.report.sequences = await syncSequences(neu, old, queue, this.options.sequenceMargin);
        return { value: null, detail: `${this.report.sequences} sequences on "${consumer}" moved past "${leaf}" + ${this.options.sequenceMargin}` };
      });
      await this.verify(neu, old, tables, newDb);
    }
    await this.step('drop-reverse', async () => {
      // NEW first, in one transaction (the reverse queue and the switched-over mark go together);
      // then OLD, in one transaction: its fence lifts as the reverse subscription goes.
      await inTransaction(neu, async () => {
        await unregisterConsumer(neu, queue, consumer);
        await dropQueue(neu, queue);
        await neu.query('UPDATE pgconvey.subscription SET switched_over_at = NULL WHERE queue_name = $1 AND consumer_name = $2', [forwardQueue, leaf]);
      });
      await inTransaction(old, async () => {
        await old.query(format('ALTER DATABASE %I RESET default_transaction_read_only', await currentDatabase(old)));
        await old.query('DELETE FROM pgconvey.subscription WHERE queue_name = $1 AND consumer_name = $2', [queue, consumer]);
      });
      this.report.reverse = { queue, consumer, provider: newDb.name, tables: tables.length, sequences: this.report.sequences };
      return { value: null, detail: `reverse queue "${queue}" dropped; "${consumer}" (${oldDb.display}) takes writes, "${leaf}" stays fenced` };
    });
    return this.finish();
  }

  /** Step 2: new sessions on the database start read-only; every other session is ended. */
  private async fence(client: pg.Client, database: DatabaseSpec): Promise<void> {
    const started = performance.now();
    await this.step('fence', async () => {
      await client.query(format('ALTER DATABASE %I SET default_transaction_read_only = on', await currentDatabase(client)));
      this.fencedAt = started;
      const ended = await endSessions(client, this.options.timeoutMs);
      this.report.endedSessions.push(...ended);
      return { value: null, detail: `${database.display} read-only for new sessions; ${ended.length} other session(s) ended` };
    });
  }

  /** Step 3: a tick after the fence, applied on the subscriber (by its running worker, or by our own). */
  private async drain(provider: pg.Client, subscriber: pg.Client, providerDb: DatabaseSpec, subscriberDb: DatabaseSpec, queue: string, consumer: string): Promise<void> {
    await this.step('drain', async () => {
      const tick = await forceTick(provider, queue);
      this.report.drainTick = tick;
      this.report.drainedBy = await applyThrough(providerDb, subscriberDb, subscriber, queue, consumer, tick, this.options.timeoutMs);
      return { value: null, detail: `tick ${tick} applied by ${this.report.drainedBy === 'switchover' ? "switchover's own worker" : 'the running worker'}` };
    });
  }

  /** Step 5: every table has as many rows on both sides; if not, stop with the fence in place. */
  private async verify(provider: pg.Client, subscriber: pg.Client, tables: QualifiedTable[], fenced: DatabaseSpec): Promise<void> {
    await this.step('verify', async () => {
      if (this.options.verify === 'none') return { value: null, detail: 'skipped (--verify none)' };
      const [a, b] = await Promise.all([countRows(provider, tables), countRows(subscriber, tables)]);
      this.report.tables = tables.map((t, i) => ({ table: `${t.schema}.${t.name}`, from: a[i]!, to: b[i]! }));
      const differ = this.report.tables.filter((t) => t.from !== t.to);
      if (differ.length) {
        throw new SwitchoverError(
          'switchover_counts_differ',
          `row counts differ: ${differ.map((t) => `${t.table} ${t.from} vs ${t.to}`).join(', ')}; ${fenced.name} stays fenced`,
          `find the cause (a table written on the subscriber?) and run the switchover again; to undo the fence (in a session of that database, which starts read-only): SET default_transaction_read_only = off; ALTER DATABASE ${format('%I', await currentDatabase(provider))} RESET default_transaction_read_only;`,
        );
      }
      return { value: null, detail: `${tables.length} tables, ${a.reduce((s, n) => s + n, 0)} rows, counts equal` };
    });
  }
}

interface QualifiedTable {
  schema: string;
  name: string;
}

async function subscribed(client: pg.Client, queue: string, consumer: string): Promise<boolean> {
  return (await client.query('SELECT 1 FROM pgconvey.subscription WHERE queue_name = $1 AND consumer_name = $2', [queue, consumer])).rowCount! > 0;
}

/** The subscription's tables, all of which must be `ok`. */
async function okTables(subscriber: pg.Client, queue: string, consumer: string): Promise<QualifiedTable[]> {
  const status = await tableStatus(subscriber, queue, consumer);
  const waiting = status.filter((s) => s.state !== 'ok');
  if (waiting.length) {
    throw new SwitchoverError(
      'switchover_tables_not_ready',
      `${waiting.length} table(s) of subscription "${consumer}" are not replicating yet: ${waiting.map((s) => `${s.schema}.${s.table} (${s.state})`).join(', ')}`,
      'keep the worker running until every table is ok (its copy finished and merged), then switch over',
    );
  }
  return status.map((s) => ({ schema: s.schema, name: s.table }));
}

/** How long the oldest tick the consumer has not applied has been waiting (0 when it is at the last tick). */
async function lagMs(provider: pg.Client, queue: string, consumerTick: string): Promise<number> {
  const { rows } = await provider.query<{ ms: string }>(
    `SELECT extract(epoch FROM clock_timestamp() - t.tick_time) * 1000 AS ms FROM pgconvey.tick t
      WHERE t.queue_id = (SELECT queue_id FROM pgconvey.queue WHERE queue_name = $1) AND t.tick_id > $2 ORDER BY t.tick_id LIMIT 1`,
    [queue, consumerTick],
  );
  return rows.length ? Number(rows[0]!.ms) : 0;
}

/** Before fencing: every table and sequence the reverse queue will carry exists on the new node. */
async function checkReversible(old: pg.Client, neu: pg.Client, queue: string, tables: QualifiedTable[]): Promise<void> {
  const sequences = await carriedSequences(old, queue);
  const names = [...tables.map((t) => format('%I.%I', t.schema, t.name)), ...sequences.map((s) => format('%I.%I', s.schema, s.name))];
  const { rows } = await neu.query<{ name: string }>('SELECT n AS name FROM unnest($1::text[]) n WHERE to_regclass(n) IS NULL', [names]);
  if (rows.length) {
    throw new SwitchoverError('switchover_reverse_impossible', `reverse replication needs ${rows.map((r) => r.name).join(', ')} on the new node, which lacks them`, 'create them there, or switch over without --reverse');
  }
}

async function carriedSequences(provider: pg.Client, queue: string): Promise<QualifiedTable[]> {
  const { rows } = await provider.query<{ schema: string; name: string }>(
    'SELECT s.seq_schema AS schema, s.seq_name AS name FROM pgconvey.captured_sequence s JOIN pgconvey.queue q USING (queue_id) WHERE q.queue_name = $1 ORDER BY 1, 2',
    [queue],
  );
  return rows;
}

/** Ends every session on the client's database that is neither pgconvey's nor this one and started before now; returns them. */
async function endSessions(client: pg.Client, timeoutMs: number): Promise<EndedSession[]> {
  const fence = (await client.query<{ at: Date }>('SELECT clock_timestamp() AS at')).rows[0]!.at;
  const ended = new Map<number, EndedSession>();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await client.query<{ pid: number; usename: string | null; application_name: string; client_addr: string | null; state: string | null; xact_start: Date | null }>(
      `SELECT pid, usename, application_name, client_addr::text AS client_addr, state, xact_start FROM pg_catalog.pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
          AND left(coalesce(application_name, ''), 9) <> 'pgconvey:' AND backend_start <= $1`,
      [fence],
    );
    if (!rows.length) return [...ended.values()];
    if (Date.now() > deadline) {
      throw new SwitchoverError('switchover_sessions_remain', `${rows.length} session(s) did not end within ${timeoutMs} ms (pids ${rows.map((r) => r.pid).join(', ')})`, 'find out what keeps them (pg_stat_activity), then run the switchover again');
    }
    for (const r of rows) {
      if (ended.has(r.pid)) continue;
      try {
        await client.query('SELECT pg_catalog.pg_terminate_backend($1)', [r.pid]);
      } catch (err) {
        if ((err as { code?: string }).code === '42501') {
          throw new SwitchoverError('switchover_cannot_end_sessions', `not allowed to end session ${r.pid} (user ${r.usename ?? 'unknown'})`, 'connect as a superuser or a member of pg_signal_backend');
        }
        throw err;
      }
      ended.set(r.pid, { pid: r.pid, user: r.usename, applicationName: r.application_name, clientAddress: r.client_addr, state: r.state, transactionStart: r.xact_start });
    }
    await sleep(10);
  }
}

async function completedTick(subscriber: pg.Client, queue: string, consumer: string): Promise<bigint> {
  const { rows } = await subscriber.query<{ tick: string | null }>('SELECT completed_tick::text AS tick FROM pgconvey.subscription WHERE queue_name = $1 AND consumer_name = $2', [queue, consumer]);
  return BigInt(rows[0]?.tick ?? '0');
}

/**
 * Waits until the subscriber has applied `tick`: by the worker already
 * running (it holds the subscription's lock), or else by our own worker,
 * which takes that lock, so two never apply at once.
 */
async function applyThrough(
  providerDb: DatabaseSpec,
  subscriberDb: DatabaseSpec,
  subscriber: pg.Client,
  queue: string,
  consumer: string,
  tick: string,
  timeoutMs: number,
): Promise<'running-worker' | 'switchover'> {
  const target = BigInt(tick);
  const deadline = Date.now() + timeoutMs;
  const timedOut = () =>
    new SwitchoverError('switchover_drain_timeout', `the subscription "${consumer}" did not apply tick ${tick} of queue "${queue}" within ${timeoutMs} ms`, 'check the worker\'s log, then run the switchover again (writes stay fenced meanwhile), or raise --timeout');
  const workerProvider = await connect(providerDb.connection, 'switchover-worker');
  const workerSubscriber = await connect(subscriberDb.connection, 'switchover-worker').catch(async (err) => {
    await workerProvider.end();
    throw err;
  });
  try {
    const worker = new ApplyWorker(workerProvider, workerSubscriber, { queue, consumer });
    try {
      await worker.start();
    } catch (err) {
      if (!(err instanceof WorkerBusyError)) throw err;
      while ((await completedTick(subscriber, queue, consumer)) < target) {
        if (Date.now() > deadline) throw timedOut();
        await sleep(10);
      }
      return 'running-worker';
    }
    while ((await completedTick(subscriber, queue, consumer)) < target) {
      if (Date.now() > deadline) throw timedOut();
      await worker.step();
    }
    return 'switchover';
  } finally {
    await Promise.all([workerProvider.end().catch(() => undefined), workerSubscriber.end().catch(() => undefined)]);
  }
}

/** Row counts of the tables, in one statement (one snapshot). */
async function countRows(client: pg.Client, tables: QualifiedTable[]): Promise<number[]> {
  if (!tables.length) return [];
  const sql = tables.map((t, i) => format('SELECT %s AS i, count(*) AS n FROM %I.%I', i, t.schema, t.name)).join(' UNION ALL ');
  const { rows } = await client.query<{ i: number; n: string }>(sql);
  const counts = new Array<number>(tables.length).fill(0);
  for (const r of rows) counts[r.i] = Number(r.n);
  return counts;
}

async function inTransaction(client: pg.Client, body: () => Promise<void>): Promise<void> {
  await client.query('BEGIN');
  try {
    await body();
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/**
 * Step 6: on NEW a reverse queue capturing the forward queue's tables (same
 * keys) and sequences, with OLD's root node as its consumer; on OLD the
 * subscription to it, every table `ok` (just verified equal), naming NEW's
 * database as its provider. Idempotent: a re-run keeps every position.
 */
async function setUpReverse(
  old: pg.Client,
  neu: pg.Client,
  t: Topology,
  newDb: DatabaseSpec,
  tables: QualifiedTable[],
): Promise<NonNullable<SwitchoverReport['reverse']>> {
  const queue = reverseQueueName(t.queue.name);
  const consumer = t.root.name;
  const wanted = new Set(tables.map((x) => `${x.schema}.${x.name}`));
  const { rows: captured } = await old.query<{ schema: string; name: string; keys: string[] }>(
    'SELECT c.table_schema AS schema, c.table_name AS name, c.key_columns AS keys FROM pgconvey.captured_table c JOIN pgconvey.queue q USING (queue_id) WHERE q.queue_name = $1 ORDER BY 1, 2',
    [t.queue.name],
  );
  const carried = captured.filter((c) => wanted.has(`${c.schema}.${c.name}`));
  const sequences = await carriedSequences(old, t.queue.name);
  const d = t.queue.daemons;
  let position = '';
  await inTransaction(neu, async () => {
    await createQueue(neu, queue, {
      tickerMaxCount: d.ticker.maxEvents,
      tickerMaxLagMs: d.ticker.maxLagMs,
      tickerIdlePeriodMs: d.ticker.idlePeriodMs,
      rotationTxids: d.maintenance.rotationTransactions,
      tickRetentionMs: d.maintenance.tickRetentionMs,
    });
    for (const c of carried) await addTable(neu, queue, c.schema, c.name, c.keys);
    for (const s of sequences) await addSequence(neu, queue, s.schema, s.name);
    position = await registerConsumer(neu, queue, consumer);
  });
  await inTransaction(old, async () => {
    await old.query(
      `INSERT INTO pgconvey.subscription (queue_name, consumer_name, completed_tick, provider_database) VALUES ($1, $2, $3, $4)
       ON CONFLICT (queue_name, consumer_name) DO NOTHING`,
      [queue, consumer, position, newDb.name],
    );
    for (const c of carried) await addSubscriberTable(old, queue, consumer, c.schema, c.name, 'ok');
  });
  return { queue, consumer, provider: newDb.name, tables: carried.length, sequences: sequences.length };
}
