/**
 * Switchover: the upgrade's last step, and its way back. `--to NEW` (a leaf
 * of the queue's root OLD) checks the preconditions, fences NEW (so nothing
 * written there escapes capture), then OLD, drains the queue to NEW, moves
 * NEW's sequences past OLD's, compares row counts, optionally sets up reverse
 * replication NEW → OLD, and hands NEW over (its fence lifts; OLD's stays, as
 * standby). `--to OLD` switches back over the reverse queue the same way.
 * The state lives in the databases (fences, marks, the reverse queue), every
 * step is idempotent: an interrupted switchover is finished by running it
 * again, or undone by switching to the node it came from. Results are plain
 * data with per-step timings; render turns them into text.
 */
import { hostname } from 'node:os';
import type pg from 'pg';
import type { DatabaseSpec, DesiredState, NodeSpec, QueueSpec } from '../config/index.js';
import { connect, inTransaction } from '../db/index.js';
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
  fenceBlockers,
  forceTick,
  installFenceTriggers,
  installedEngine,
  isFenced,
  liftFence,
  markStandby,
  shortContent,
  queueStatus,
  readFence,
  recordFence,
  registerConsumer,
  syncSequences,
  tableStatus,
  unregisterConsumer,
} from '../engine/index.js';
import { introspectNode } from '../catalog/index.js';
import { closest, sqlFormat } from '../kernel/index.js';
import { reversePrivilegeProblems } from '../planner/privileges.js';

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
  /**
   * Refresh the materialized views of the node taking writes before the hand-over (default true):
   * nothing replicates them, so there they hold what was computed there last (nothing after a schema
   * copy). Inside the write window: each REFRESH adds its time to it.
   */
  refreshMatviews?: boolean;
}

export const SWITCHOVER_DEFAULTS = { maxLagMs: 5_000, sequenceMargin: 1_000, timeoutMs: 60_000 } as const;

export type StepName = 'preconditions' | 'fence-target' | 'fence' | 'drain' | 'sequences' | 'verify' | 'matviews' | 'reverse' | 'drop-reverse' | 'handover' | 'undo';

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
  /** `undone`: a switchover that had stopped half way was undone (the node it had fenced takes writes again). */
  outcome: 'switched' | 'already-done' | 'undone';
  /** Why nothing was done (`already-done`), what was undone (`undone`), or what an earlier run had left to finish. */
  note: string | null;
  steps: StepReport[];
  endedSessions: EndedSession[];
  drainTick: string | null;
  drainedBy: 'running-worker' | 'switchover' | null;
  sequences: number;
  tables: TableCount[];
  /** The reverse replication set up (forward) or dropped (rollback). */
  reverse: { queue: string; consumer: string; provider: string; tables: number; sequences: number } | null;
  /** Materialized views of the node taking writes: refreshed, or not (skipped, or the REFRESH failed: why). Null before that step. */
  materializedViews: { refreshed: string[]; notRefreshed: Array<{ view: string; reason: string }> } | null;
  /**
   * From the switchover's first fence (recorded in the database, so a resumed
   * run measures from the first run's fence) to the hand-over's commit, on the
   * clock of the node that becomes writable: how long no node took writes.
   */
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
      const run = new Run(topology, options, hooks, state.file, 'forward', ref(topology.root, db(topology.root)), ref(topology.target, db(topology.target)));
      return await run.forward(old, neu, db(topology.root), db(topology.target));
    }
    const leaf = await switchedLeaf(topology, old, db, opened);
    const run = new Run(topology, options, hooks, state.file, 'rollback', ref(leaf.node, db(leaf.node)), ref(topology.root, db(topology.root)));
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

/** Who set a fence, as recorded with it: this process. */
const FENCED_BY = `pgconvey switchover, pid ${process.pid} on ${hostname()}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface FenceTarget {
  /** The node of the fenced database. */
  node: string;
  /** The node the switchover makes writable. */
  to: string;
  /** Start measuring the write window here (the node that becomes writable). */
  startWindow: boolean;
}

/** One switchover in one direction: the steps, their timings, and the report they fill in. */
class Run {
  readonly report: SwitchoverReport;
  /** A fence was set (or found): a failure leaves writes fenced. */
  private fenced = false;

  constructor(
    private readonly t: Topology,
    private readonly options: SwitchoverOptions,
    private readonly hooks: SwitchoverHooks,
    private readonly file: string,
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
      materializedViews: null,
      writeUnavailableMs: null,
    };
  }

  /** How to finish or undo this switchover once something is fenced. */
  private fencedHint(): string {
    const { from, to } = this.report;
    return (
      `writes stay fenced; \`pgconvey status ${this.file}\` shows the fences. Finish it with \`pgconvey switchover ${this.file} --to ${to.node}\` (every step resumes), ` +
      `or undo it with \`pgconvey switchover ${this.file} --to ${from.node}\` ("${from.node}" takes writes again)`
    );
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
      if (err instanceof SwitchoverError) {
        throw new SwitchoverError(err.code, err.message, this.fenced && err.hint === '' ? this.fencedHint() : err.hint || 'fix the cause and run the switchover again', this.report);
      }
      const sqlState = (err as { code?: unknown }).code;
      if (typeof sqlState !== 'string' || !/^[0-9A-Z]{5}$/.test(sqlState)) throw err;
      throw new SwitchoverError(
        'switchover_step_failed',
        `step ${name} failed: ${(err as Error).message} (SQLSTATE ${sqlState})`,
        this.fenced ? `fix the cause; ${this.fencedHint()}` : 'nothing was changed; fix the cause and run the switchover again',
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

  async forward(old: pg.Client, neu: pg.Client, oldDb: DatabaseSpec, newDb: DatabaseSpec): Promise<SwitchoverReport> {
    const queue = this.t.queue.name;
    const consumer = this.t.target.name;
    const root = this.t.root.name;
    await requireEngine(old, this.t.root);
    await requireEngine(neu, this.t.target);
    const at = await switchedOverAt(neu, queue, consumer);
    const [oldFence, newFence] = [await readFence(old), await readFence(neu)];
    if (at) {
      // NEW was handed over. A switch back stopped half way leaves NEW fenced too: undo it.
      if (isFenced(newFence)) return this.undo(neu, old, newDb, oldDb, `a switch back to "${root}" stopped half way; "${consumer}" takes writes again`);
      // The hand-over committed on NEW; OLD's fence was not yet marked standby.
      if (oldFence.record?.purpose === 'switchover' || !isFenced(oldFence)) {
        await this.confirm();
        this.fenced = true;
        await this.step('handover', async () => {
          await this.standby(old, oldDb, { node: root, to: consumer });
          return { value: null, detail: `the hand-over to "${consumer}" had committed at ${at.toISOString()}; "${root}" (${oldDb.display}) is fenced as standby` };
        });
        this.report.note = 'finished a switchover that had stopped after its hand-over';
        return this.report;
      }
      // A table captured since the hand-over gets its fence trigger on the standby node.
      if (oldFence.tables > oldFence.fencedTables) await this.fenceTriggers(old, oldDb);
      const reverse = await reverseSubscription(old, reverseQueueName(queue), root);
      const missing = this.options.reverse && !reverse ? ' (without reverse replication; --reverse cannot be added afterwards)' : '';
      return this.alreadyDone(`queue "${queue}" was switched over to "${consumer}" at ${at.toISOString()}${missing}; nothing to do`);
    }
    if ((await reverseSubscription(old, reverseQueueName(queue), root)) && !(await queueExists(neu, reverseQueueName(queue)))) {
      throw new SwitchoverError(
        'switchover_interrupted',
        `a switch back of queue "${queue}" to "${root}" stopped after it dropped the reverse queue on "${consumer}"; "${root}" is not writable yet`,
        `finish it with \`pgconvey switchover ${this.file} --to ${root}\``,
      );
    }

    const tables = await this.step('preconditions', async () => {
      const status = await queueStatus(old, queue);
      const position = status.find((s) => s.consumer === consumer);
      if (!position || !(await subscribed(neu, queue, consumer))) {
        throw new SwitchoverError('switchover_not_subscribed', `node "${consumer}" is not a subscriber of queue "${queue}"`, 'run `pgconvey apply FILE`, then let the worker copy and catch up');
      }
      const tables = await okTables(neu, queue, consumer);
      const resuming = isFenced(oldFence);
      const lag = resuming ? 0 : await lagMs(old, queue, position.consumerTick!);
      if (lag > this.options.maxLagMs) {
        throw new SwitchoverError('switchover_lag_too_high', `node "${consumer}" is ${Math.round(lag)} ms behind queue "${queue}" (--max-lag ${this.options.maxLagMs} ms)`, 'make sure the ticker and the worker run, wait until the lag is small, or raise --max-lag');
      }
      if (this.options.reverse) {
        await checkReversible(old, neu, queue, tables);
        await checkReverseRights(old, neu, this.t, this.t.target.name, tables);
      }
      return { value: tables, detail: `${tables.length} tables ok, lag ${Math.round(lag)} ms${resuming ? ' (resuming: writes already fenced)' : ''}` };
    });
    await this.confirm();

    // NEW first: from before OLD refuses a write until the hand-over, no write can land on NEW uncaptured.
    await this.fence('fence-target', neu, newDb, { node: consumer, to: consumer, startWindow: true });
    await this.fence('fence', old, oldDb, { node: root, to: consumer, startWindow: false });
    await this.drain(old, neu, oldDb, newDb, queue, consumer);
    await this.step('sequences', async () => {
      this.report.sequences = await syncSequences(old, neu, queue, this.options.sequenceMargin);
      return { value: null, detail: `${this.report.sequences} sequences on "${consumer}" moved past "${root}" + ${this.options.sequenceMargin}` };
    });
    await this.verify(old, neu, tables);
    await this.refreshMatviews(neu, consumer);
    if (this.options.reverse) {
      await this.step('reverse', async () => {
        this.report.reverse = await setUpReverse(old, neu, this.t, newDb, tables);
        return { value: null, detail: `queue "${this.report.reverse.queue}" on "${consumer}": ${this.report.reverse.tables} tables, ${this.report.reverse.sequences} sequences, consumer "${this.report.reverse.consumer}"` };
      });
    }
    await this.step('handover', async () => {
      // NEW's fence lifts and its switched-over mark is set in one transaction; then OLD's fence becomes standby.
      await inTransaction(neu, async () => {
        this.report.writeUnavailableMs = (await liftFence(neu)).windowMs;
        await neu.query('UPDATE pgconvey.subscription SET switched_over_at = now() WHERE queue_name = $1 AND consumer_name = $2', [queue, consumer]);
      });
      await this.standby(old, oldDb, { node: root, to: consumer });
      return { value: null, detail: `"${consumer}" (${newDb.display}) takes writes; "${root}" stays fenced` };
    });
    return this.report;
  }

  async rollback(old: pg.Client, neu: pg.Client, oldDb: DatabaseSpec, newDb: DatabaseSpec): Promise<SwitchoverReport> {
    const forwardQueue = this.t.queue.name;
    const leaf = this.report.from.node;
    const queue = reverseQueueName(forwardQueue);
    const consumer = this.t.root.name;
    await requireEngine(neu, this.t.leaves.find((l) => l.name === leaf)!);
    const row = await reverseSubscription(old, queue, consumer);
    const at = await switchedOverAt(neu, forwardQueue, leaf);
    const reverseExists = await queueExists(neu, queue);
    const [oldFence, newFence] = [await readFence(old), await readFence(neu)];
    if (!at && !(row && !reverseExists)) {
      // Never handed over to NEW: nothing happened, or a switchover to NEW stopped half way (undo it).
      if (isFenced(oldFence) || newFence.record?.purpose === 'switchover') {
        return this.undo(old, neu, oldDb, newDb, `a switchover to "${leaf}" stopped half way; "${consumer}" takes writes again`, reverseExists ? queue : null);
      }
      if (newFence.record?.purpose === 'standby' && newFence.tables > newFence.fencedTables) await this.fenceTriggers(neu, newDb);
      return this.alreadyDone(`"${consumer}" is already the writable node of queue "${forwardQueue}"; nothing to do`);
    }
    if (!row) {
      throw new SwitchoverError(
        'switchover_no_reverse',
        `queue "${forwardQueue}" was switched over to "${leaf}" without reverse replication: switching back would lose every write made on "${leaf}" since ${at!.toISOString()}`,
        `copy those writes to "${consumer}" yourself first; a switchover with --reverse keeps "${consumer}" up to date`,
      );
    }

    const tables = await this.step('preconditions', async () => {
      const tables = await okTables(old, queue, consumer);
      let lag = 0;
      const resuming = !reverseExists || isFenced(newFence);
      if (!resuming) {
        const position = (await queueStatus(neu, queue)).find((s) => s.consumer === consumer);
        if (!position) throw new SwitchoverError('switchover_not_subscribed', `"${consumer}" is not a consumer of the reverse queue "${queue}" on "${leaf}"`, 'switch over again with --reverse, or repair the reverse queue by hand');
        lag = await lagMs(neu, queue, position.consumerTick!);
      }
      // The rights may have changed since --reverse checked them: the switch back lifts the old node's fence and drops the reverse capture.
      if (!resuming) await checkReverseRights(old, neu, this.t, leaf, tables);
      if (lag > this.options.maxLagMs) {
        throw new SwitchoverError('switchover_lag_too_high', `"${consumer}" is ${Math.round(lag)} ms behind the reverse queue "${queue}" (--max-lag ${this.options.maxLagMs} ms)`, 'make sure the reverse ticker and worker run, wait until the lag is small, or raise --max-lag');
      }
      return { value: tables, detail: `${tables.length} tables ok, lag ${Math.round(lag)} ms${resuming ? ' (resuming)' : ''}` };
    });
    await this.confirm();

    await this.fence('fence-target', old, oldDb, { node: consumer, to: consumer, startWindow: true });
    await this.fence('fence', neu, newDb, { node: leaf, to: consumer, startWindow: false });
    if (reverseExists) {
      await this.drain(neu, old, newDb, oldDb, queue, consumer);
      await this.step('sequences', async () => {
        this.report.sequences = await syncSequences(neu, old, queue, this.options.sequenceMargin);
        return { value: null, detail: `${this.report.sequences} sequences on "${consumer}" moved past "${leaf}" + ${this.options.sequenceMargin}` };
      });
      await this.verify(neu, old, tables);
    }
    await this.refreshMatviews(old, consumer);
    await this.step('drop-reverse', async () => {
      // On NEW in one transaction: the reverse queue, the switched-over mark, and NEW's fence becomes standby.
      await inTransaction(neu, async () => {
        if (reverseExists) {
          await unregisterConsumer(neu, queue, consumer);
          await dropQueue(neu, queue);
        }
        await neu.query('UPDATE pgconvey.subscription SET switched_over_at = NULL WHERE queue_name = $1 AND consumer_name = $2', [forwardQueue, leaf]);
        await markStandby(neu, consumer);
      });
      return { value: null, detail: reverseExists ? `reverse queue "${queue}" dropped on "${leaf}"` : `reverse queue "${queue}" was dropped already` };
    });
    await this.step('handover', async () => {
      await inTransaction(old, async () => {
        this.report.writeUnavailableMs = (await liftFence(old)).windowMs;
        await old.query('DELETE FROM pgconvey.subscription WHERE queue_name = $1 AND consumer_name = $2', [queue, consumer]);
      });
      this.report.reverse = { queue, consumer, provider: newDb.name, tables: tables.length, sequences: this.report.sequences };
      return { value: null, detail: `"${consumer}" (${oldDb.display}) takes writes, "${leaf}" stays fenced` };
    });
    return this.report;
  }

  /**
   * Undoes a switchover that stopped half way: `back` (the node that was
   * writable before it) takes writes again, `other` stays fenced as standby,
   * and a reverse queue set up for the switchover (never used: nothing was
   * handed over) is dropped.
   */
  private async undo(back: pg.Client, other: pg.Client, backDb: DatabaseSpec, otherDb: DatabaseSpec, what: string, reverseQueue: string | null = null): Promise<SwitchoverReport> {
    const backNode = this.report.to.node;
    const otherNode = this.report.from.node;
    await this.confirm();
    this.fenced = true;
    await this.step('undo', async () => {
      // The other node first (fenced as standby, its unused reverse queue dropped), then `back` lifts its fence.
      const dropReverse = async () => {
        if (reverseQueue) {
          await unregisterConsumer(other, reverseQueue, this.t.root.name);
          await dropQueue(other, reverseQueue);
        }
      };
      // A node the switchover never got to fence stays as it was.
      if (isFenced(await readFence(other))) await this.standby(other, otherDb, { node: otherNode, to: backNode }, dropReverse);
      else await inTransaction(other, dropReverse);
      await inTransaction(back, async () => {
        this.report.writeUnavailableMs = (await liftFence(back)).windowMs;
        if (reverseQueue) await back.query('DELETE FROM pgconvey.subscription WHERE queue_name = $1 AND consumer_name = $2', [reverseQueue, this.t.root.name]);
      });
      return { value: null, detail: `${what} (${backDb.display}); "${otherNode}" (${otherDb.display}) stays fenced${reverseQueue ? `, its unused reverse queue "${reverseQueue}" dropped` : ''}` };
    });
    this.report.outcome = 'undone';
    this.report.note = what;
    return this.report;
  }

  /** Keeps a node fenced on purpose (standby): the record says so, and every table carries the fence trigger. */
  private async standby(client: pg.Client, database: DatabaseSpec, fence: { node: string; to: string }, alsoInTransaction?: () => Promise<void>): Promise<void> {
    await recordFence(client, { queue: this.t.queue.name, node: fence.node, switchoverTo: fence.to, purpose: 'standby', startWindow: false, fencedBy: FENCED_BY });
    await this.fenceTriggers(client, database);
    if (alsoInTransaction) await inTransaction(client, alsoInTransaction);
  }

  /**
   * Fences a node: the record and the database default (new sessions start
   * read-only) in one transaction, then every other session that started
   * before is ended, then the fence trigger goes on every table (ending
   * sessions whose locks keep it waiting).
   */
  private async fence(name: StepName, client: pg.Client, database: DatabaseSpec, target: FenceTarget): Promise<void> {
    await this.step(name, async () => {
      await recordFence(client, { queue: this.t.queue.name, node: target.node, switchoverTo: target.to, purpose: 'switchover', startWindow: target.startWindow, fencedBy: FENCED_BY });
      this.fenced = true;
      const ended = await endSessions(client, this.options.timeoutMs);
      this.report.endedSessions.push(...ended);
      const { tables, blockers } = await this.fenceTriggers(client, database);
      return { value: null, detail: `"${target.node}" (${database.display}): sessions start read-only, ${tables} tables refuse writes; ${ended.length + blockers} other session(s) ended` };
    });
  }

  private async fenceTriggers(client: pg.Client, database: DatabaseSpec): Promise<{ tables: number; blockers: number }> {
    const deadline = Date.now() + this.options.timeoutMs;
    let blockers = 0;
    for (;;) {
      try {
        return { tables: await installFenceTriggers(client, 200), blockers };
      } catch (err) {
        if ((err as { code?: string }).code !== '55P03') throw err;
      }
      if (Date.now() > deadline) {
        throw new SwitchoverError('switchover_fence_blocked', `the fence triggers could not be set on ${database.display} within ${this.options.timeoutMs} ms: sessions keep locks on its tables`, '');
      }
      for (const r of await fenceBlockers(client)) {
        if (this.report.endedSessions.some((s) => s.pid === r.pid)) continue;
        await terminate(client, r.pid, r.usename);
        blockers++;
        this.report.endedSessions.push({ pid: r.pid, user: r.usename, applicationName: r.application_name, clientAddress: r.client_addr, state: r.state, transactionStart: r.xact_start });
      }
      await sleep(20);
    }
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

  /**
   * Step 6: the materialized views of the node taking writes, refreshed in creation order (one built on
   * another comes later). A REFRESH that fails (not the owner…) does not stop the hand-over: the report
   * names each view not refreshed and why.
   */
  private async refreshMatviews(client: pg.Client, node: string): Promise<void> {
    await this.step('matviews', async () => {
      const { rows } = await client.query<{ schema: string; name: string }>(
        `SELECT n.nspname AS schema, c.relname AS name FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind = 'm' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgconvey') ORDER BY c.oid`,
      );
      const result = { refreshed: [] as string[], notRefreshed: [] as Array<{ view: string; reason: string }> };
      this.report.materializedViews = result;
      for (const r of rows) {
        const view = `${r.schema}.${r.name}`;
        if (this.options.refreshMatviews === false) {
          result.notRefreshed.push({ view, reason: 'skipped (--no-refresh-matviews)' });
          continue;
        }
        try {
          await client.query(sqlFormat('REFRESH MATERIALIZED VIEW %I.%I', r.schema, r.name));
          result.refreshed.push(view);
        } catch (err) {
          result.notRefreshed.push({ view, reason: `${(err as Error).message} (SQLSTATE ${(err as { code?: string }).code ?? 'unknown'})` });
        }
      }
      const not = result.notRefreshed.length ? `; NOT refreshed: ${result.notRefreshed.map((m) => `${m.view} (${m.reason})`).join(', ')}` : '';
      return { value: null, detail: rows.length ? `${result.refreshed.length} of ${rows.length} materialized view(s) on "${node}" refreshed${not}` : `no materialized views on "${node}"` };
    });
  }

  /** Step 5: every table has as many rows on both sides; if not, stop with the fences in place. */
  private async verify(provider: pg.Client, subscriber: pg.Client, tables: QualifiedTable[]): Promise<void> {
    await this.step('verify', async () => {
      if (this.options.verify === 'none') return { value: null, detail: 'skipped (--verify none)' };
      const [a, b] = await Promise.all([countRows(provider, tables), countRows(subscriber, tables)]);
      this.report.tables = tables.map((t, i) => ({ table: `${t.schema}.${t.name}`, from: a[i]!, to: b[i]! }));
      const differ = this.report.tables.filter((t) => t.from !== t.to);
      if (differ.length) {
        throw new SwitchoverError(
          'switchover_counts_differ',
          `row counts differ: ${differ.map((t) => `${t.table} ${t.from} vs ${t.to}`).join(', ')}; both nodes stay fenced`,
          `find the cause (rows written on the subscriber before the switchover?), then: ${this.fencedHint()}`,
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
  const names = [...tables.map((t) => sqlFormat('%I.%I', t.schema, t.name)), ...sequences.map((s) => sqlFormat('%I.%I', s.schema, s.name))];
  const { rows } = await neu.query<{ name: string }>('SELECT n AS name FROM unnest($1::text[]) n WHERE to_regclass(n) IS NULL', [names]);
  if (rows.length) {
    throw new SwitchoverError('switchover_reverse_impossible', `reverse replication needs ${rows.map((r) => r.name).join(', ')} on the new node, which lacks them`, 'create them there, or switch over without --reverse');
  }
}

/**
 * Before fencing: the roles of the file may do what the way back needs
 * (planner/privileges, the rule plan warns by): the new node captures its
 * tables, the old one applies them in replica mode and gets its fence
 * lifted at the switch back. Refuses, changing nothing, when one may not —
 * a way back that cannot apply would otherwise lose every write made on
 * the new node while claiming to keep it.
 */
async function checkReverseRights(old: pg.Client, neu: pg.Client, t: Topology, leaf: string, tables: QualifiedTable[]): Promise<void> {
  const [oldCatalog, newCatalog] = [await introspectNode(old), await introspectNode(neu)];
  const ownerOf = (schema: string, name: string, list: Array<{ schema: string; name: string; owner: string }>) => list.find((x) => x.schema === schema && x.name === name)?.owner ?? '';
  const sequences = await carriedSequences(old, t.queue.name);
  const problems = reversePrivilegeProblems({
    old: { node: t.root.name, catalog: oldCatalog },
    neu: { node: leaf, catalog: newCatalog },
    tables: tables.map((x) => ({ schema: x.schema, name: x.name, owner: ownerOf(x.schema, x.name, oldCatalog.tables) })),
    sequences: sequences.map((x) => ({ schema: x.schema, name: x.name, owner: ownerOf(x.schema, x.name, oldCatalog.sequences) })),
  });
  if (!problems.length) return;
  throw new SwitchoverError(
    'switchover_reverse_not_permitted',
    `the way back to "${t.root.name}" cannot work: ${problems.map((p) => `${p.message} (${p.code})`).join('; ')}`,
    `nothing was changed. ${problems.map((p) => p.hint).join('; ')}. Or switch over without --reverse (a switch back then loses what is written on "${leaf}")`,
  );
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
      await terminate(client, r.pid, r.usename);
      ended.set(r.pid, { pid: r.pid, user: r.usename, applicationName: r.application_name, clientAddress: r.client_addr, state: r.state, transactionStart: r.xact_start });
    }
    await sleep(10);
  }
}

async function terminate(client: pg.Client, pid: number, user: string | null): Promise<void> {
  try {
    await client.query('SELECT pg_catalog.pg_terminate_backend($1)', [pid]);
  } catch (err) {
    if ((err as { code?: string }).code === '42501') {
      throw new SwitchoverError('switchover_cannot_end_sessions', `not allowed to end session ${pid} (user ${user ?? 'unknown'})`, 'connect as a superuser or a member of pg_signal_backend');
    }
    throw err;
  }
}

async function queueExists(client: pg.Client, queue: string): Promise<boolean> {
  return (await client.query('SELECT 1 FROM pgconvey.queue WHERE queue_name = $1', [queue])).rowCount! > 0;
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

/**
 * Row counts of the tables, in one statement (one snapshot): an ordinary
 * table's own rows (ONLY: an inheritance parent's children are tables of
 * their own), a partitioned table's rows in all its partitions.
 */
export async function countRows(client: pg.Client, tables: QualifiedTable[]): Promise<number[]> {
  if (!tables.length) return [];
  const partitioned = new Set(
    (
      await client.query<{ i: number }>(
        `SELECT t.i FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(s, n, i)
           JOIN pg_catalog.pg_namespace ns ON ns.nspname = t.s JOIN pg_catalog.pg_class c ON c.relnamespace = ns.oid AND c.relname = t.n
          WHERE c.relkind = 'p'`,
        [tables.map((t) => t.schema), tables.map((t) => t.name)],
      )
    ).rows.map((r) => Number(r.i) - 1),
  );
  const sql = tables.map((t, i) => sqlFormat(`SELECT %s AS i, count(*) AS n FROM ${partitioned.has(i) ? '' : 'ONLY '}%I.%I`, i, t.schema, t.name)).join(' UNION ALL ');
  const { rows } = await client.query<{ i: number; n: string }>(sql);
  const counts = new Array<number>(tables.length).fill(0);
  for (const r of rows) counts[r.i] = Number(r.n);
  return counts;
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
