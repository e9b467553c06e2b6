/**
 * `pgconvey run`: everything a desired-state file needs running, in one
 * process — the ticker and maintenance of each queue on its root, and the
 * apply worker (with its initial copies) of each subscriber; or only the work
 * of one node, so it can be spread over machines. Replication set up by a
 * switchover (`--reverse`) is found in the databases and started or stopped
 * as it appears or goes. Each piece reconnects on its own; one that cannot
 * go on (its position lost) stops alone, and the run ends when all stopped.
 */
import type pg from 'pg';
import type { DatabaseSpec, DesiredState, QueueSpec } from '../config/index.js';
import { connect } from '../db/index.js';
import { runTickerDaemon, runWorkerDaemon } from './engine-daemons.js';
import type { Logger } from './log.js';
import { errorText, sleep } from './loop.js';
import { forwardQueueOf, reverseSubscriptions } from '../engine/index.js';
import { collectStatus } from '../operations/index.js';
import type { RunMetrics } from './metrics.js';

export type Work =
  | { kind: 'ticker'; key: string; queue: string; node: string; database: DatabaseSpec; maintenanceEveryMs: number }
  | { kind: 'worker'; key: string; queue: string; node: string; provider: DatabaseSpec; subscriber: DatabaseSpec; settings: QueueSpec['daemons'] };

/** The work the file itself names (for one node, or all). Pure. */
export function workOf(state: DesiredState, node?: string): Work[] {
  const db = (name: string) => state.databases.find((d) => d.name === name)!;
  const out: Work[] = [];
  for (const queue of state.queues) {
    const root = queue.nodes.find((n) => n.type === 'root')!;
    if (!node || node === root.name) out.push(tickerWork(queue.name, root.name, db(root.database), queue));
    // Every subscriber reads from its provider: the root, or a branch (cascades), whose worker also
    // re-queues for its own subscribers; a branch's queue is maintained (rotation, old ticks) by a
    // ticker there that never ticks it (its ticks come with its provider's batches).
    for (const sub of queue.nodes.filter((n) => n.type !== 'root')) {
      if (node && node !== sub.name) continue;
      const provider = queue.nodes.find((n) => n.name === sub.provider)!;
      out.push(workerWork(queue.name, sub.name, db(provider.database), db(sub.database), queue.daemons));
      if (sub.type === 'branch') out.push(tickerWork(queue.name, sub.name, db(sub.database), queue));
    }
  }
  return out;
}

const tickerWork = (queue: string, node: string, database: DatabaseSpec, spec: Pick<QueueSpec, 'daemons'>): Work => ({
  kind: 'ticker',
  key: `ticker:${database.name}:${queue}`,
  queue,
  node,
  database,
  maintenanceEveryMs: spec.daemons.maintenance.intervalMs,
});

const workerWork = (queue: string, node: string, provider: DatabaseSpec, subscriber: DatabaseSpec, settings: QueueSpec['daemons']): Work => ({
  kind: 'worker',
  key: `worker:${subscriber.name}:${queue}:${node}`,
  queue,
  node,
  provider,
  subscriber,
  settings,
});

/**
 * Replication the databases hold beyond the file: subscriptions whose
 * provider is recorded (a switchover's reverse queue), with their tickers.
 * Unreachable databases and databases without the engine are skipped.
 */
export async function discoverWork(state: DesiredState, node?: string): Promise<Work[]> {
  const out: Work[] = [];
  const nodesOn = (database: string) => state.queues.flatMap((q) => q.nodes.filter((n) => n.database === database).map((n) => n.name));
  for (const subscriber of state.databases) {
    let client: pg.Client | undefined;
    try {
      client = await connect(subscriber.connection, 'run');
      for (const r of await reverseSubscriptions(client)) {
        const provider = state.databases.find((d) => d.name === r.providerDatabase);
        if (!provider) continue;
        const forward = forwardQueueOf(r.queue, state.queues.map((q) => q.name));
        const queueSpec = state.queues.find((q) => q.name === forward) ?? state.queues[0]!;
        if (!node || node === r.consumer) out.push(workerWork(r.queue, r.consumer, provider, subscriber, queueSpec.daemons));
        if (!node || nodesOn(provider.name).includes(node)) out.push(tickerWork(r.queue, nodesOn(provider.name)[0] ?? provider.name, provider, queueSpec));
      }
    } catch {
      // Unreachable now: the next discovery tries again.
    } finally {
      await client?.end().catch(() => undefined);
    }
  }
  return out;
}

export interface RunOptions {
  state: DesiredState;
  node?: string;
  log: Logger;
  signal: AbortSignal;
  /** Counts what the daemons do, and is refreshed from the databases every `sampleEveryMs`. */
  metrics?: RunMetrics;
  sampleEveryMs?: number;
  /** How often to look for replication a switchover set up or removed. */
  discoverEveryMs?: number;
  /** Overrides the file's copy parallelism. */
  copyParallel?: number;
}

export interface RunResult {
  /** Work that stopped because it cannot go on (e.g. a lost position). */
  failed: Array<{ key: string; error: string }>;
}

export async function runDesiredState(options: RunOptions): Promise<RunResult> {
  const { log, signal } = options;
  const running = new Map<string, { stop: AbortController; done: Promise<void> }>();
  const failed: RunResult['failed'] = [];
  const start = (work: Work, dynamic: boolean) => {
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    log.info('starting', { work: work.key, ...(dynamic ? { found_in: 'database' } : {}) });
    const done = runWork(work, options, stop.signal)
      .catch((err: unknown) => {
        failed.push({ key: work.key, error: errorText(err) });
        log.error('stopped for good', { work: work.key, error: errorText(err) });
      })
      .finally(() => {
        signal.removeEventListener('abort', onAbort);
        running.delete(work.key);
      });
    running.set(work.key, { stop, done });
  };

  const sampler = options.metrics ? sampleStatus(options, options.metrics) : Promise.resolve();
  const fixed = workOf(options.state, options.node);
  for (const w of fixed) start(w, false);
  const fixedKeys = new Set(fixed.map((w) => w.key));
  const discoverEveryMs = options.discoverEveryMs ?? 5_000;
  let everStarted = fixed.length;
  while (!signal.aborted) {
    const found = (await discoverWork(options.state, options.node)).filter((w) => !fixedKeys.has(w.key));
    const foundKeys = new Set(found.map((w) => w.key));
    for (const w of found) {
      if (!running.has(w.key) && !failed.some((f) => f.key === w.key)) {
        start(w, true);
        everStarted++;
      }
    }
    for (const [key, r] of running) {
      if (!fixedKeys.has(key) && !foundKeys.has(key)) {
        log.info('stopping: its replication was removed', { work: key });
        r.stop.abort();
      }
    }
    if (everStarted > 0 && running.size === 0 && failed.length) break;
    await sleep(discoverEveryMs, signal);
  }
  await Promise.all([...running.values()].map((r) => r.done));
  await sampler;
  return { failed };
}

/** Refreshes the metrics' gauges (lag, tables per state, copy progress, daemons running) from the databases. */
async function sampleStatus(options: RunOptions, metrics: RunMetrics): Promise<void> {
  while (!options.signal.aborted) {
    try {
      metrics.observe(await collectStatus(options.state, { node: options.node }));
    } catch (err) {
      options.log.child('metrics').warn('could not read status', { error: errorText(err) });
    }
    await sleep(options.sampleEveryMs ?? 5_000, options.signal);
  }
}

function runWork(work: Work, options: RunOptions, signal: AbortSignal): Promise<void> {
  const log = options.log.child(work.kind === 'ticker' ? `${work.queue}` : `${work.queue}.${work.node}`);
  if (work.kind === 'ticker') {
    return runTickerDaemon({ provider: work.database.connection, queue: work.queue, maintenanceEveryMs: work.maintenanceEveryMs, log, signal, events: options.metrics });
  }
  return runWorkerDaemon({
    provider: work.provider.connection,
    subscriber: work.subscriber.connection,
    queue: work.queue,
    consumer: work.node,
    copyParallel: options.copyParallel ?? work.settings.copy.parallel,
    pollMs: work.settings.worker.pollIntervalMs,
    retryDelayMs: work.settings.worker.retryDelayMs,
    log,
    signal,
    events: options.metrics,
    waitForSetup: true,
  });
}
