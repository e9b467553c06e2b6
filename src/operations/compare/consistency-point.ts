/**
 * A table's consistency point: Londiste's method, with a bounded pause on
 * the table's writers. Leaves both work sessions in a REPEATABLE READ
 * snapshot that holds the same state of the table on both sides (each side
 * that subscribes has applied the writer's tick, and no later change of the
 * table exists), and reports what it cost the writers and whom it waited
 * for. The writer is the provider for a root and a node it feeds; for two
 * nodes of a cascade it is the root (branches re-queue with the root's tick
 * ids, so both sides reach the same root tick).
 */
import type pg from 'pg';
import { displayQualified } from '../../config/index.js';
import { completedTick, forceTick } from '../../engine/index.js';
import { quoteQualified, sqlFormat } from '../../kernel/index.js';
import { CompareError } from './error.js';
import type { Settings } from './options.js';
import { describeHolder, type BlockingTransaction, type CompareProgress, type WaitedFor } from './report.js';
import type { CapturedTable, Follower, PairPlan, PlannedTable } from './resolve.js';
import type { Connections } from './sessions.js';

/** What taking a table's consistency point cost, and whom it waited for. */
export interface LockReport {
  /** Sum over lock requests of request → release (ms). */
  pausedMs: number;
  longestPauseMs: number;
  attempts: number;
  /** By pid (or prepared transaction name). */
  waited: Map<string, WaitedFor>;
}

export function newLockReport(): LockReport {
  return { pausedMs: 0, longestPauseMs: 0, attempts: 0, waited: new Map() };
}

/** A table that could not be locked at its first visit: compare comes back to it after the pair's other tables. */
export class Deferred extends Error {
  constructor(readonly lock: LockReport) {
    super('deferred');
  }
}

/** Time the snapshots and the COMMIT take once the tick is applied; kept free inside maxPauseMs. */
const SNAPSHOT_MARGIN_MS = 15;

export interface LockRound {
  /** Date.now() after which compare gives up on the table (or defers it). */
  deadline: number;
  canDefer: boolean;
  report: LockReport;
  progress: (p: Pick<CompareProgress, 'rowsDone' | 'chunksDone' | 'waitingFor'>) => void;
}

/**
 * Londiste's method, with a bounded pause: with the table locked in SHARE
 * mode on the writer (its writers wait; every earlier writer has
 * committed), force a tick T and wait until every side that subscribes has
 * applied T — each then holds every change of the table, and no later one
 * exists yet (a branch applies T and re-queues it as T, so a node under it
 * reaches the same T). Snapshots taken on both sides before the lock is
 * released therefore show the same state of the table, whatever the workers
 * apply afterwards.
 *
 * A LOCK request queued behind a running transaction would keep every new
 * writer of the table waiting behind it, so compare requests it only when no
 * other transaction holds a conflicting lock (it waits for those, without
 * queueing, and reports them), with a lock_timeout of lockTimeoutMs for the
 * race with a writer that begins in between; and it lets go when the
 * subscribing sides have not applied T within maxPauseMs of the request. Then it
 * catches up again without a lock and tries again — holding up to 1.5 times
 * as long after each attempt the subscriber was too slow for, never more than
 * maxPauseCapMs. Leaves both work sessions in their REPEATABLE READ snapshot.
 */
export async function takeSnapshotsAtOnePosition(plan: PairPlan, table: PlannedTable, conns: Connections, opts: Settings, round: LockRound): Promise<void> {
  const { captured } = table;
  let pauseMs = opts.maxPauseMs;
  for (let attempt = 0; ; attempt++) {
    // Let the subscribing sides catch up first without any lock, so writers wait only for the last tick.
    const tick = await forceTick(conns.ticker, plan.queue);
    for (const f of plan.followers) await waitForPosition(plan, f, sessionOf(conns, f), tick, opts);
    await waitForHolders(plan, captured, conns.lock, opts, round);
    const outcome = await lockAndSnapshot(plan, table, conns, opts, round.report, pauseMs);
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
  table: PlannedTable,
  conns: Connections,
  opts: Settings,
  report: LockReport,
  pauseMs: number,
): Promise<'snapshots' | 'lock-timeout' | 'subscriber-slow'> {
  const { captured } = table;
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
    const lockOnly = table.partitioned.writer ? '' : 'ONLY ';
    await conns.lock.query(sqlFormat(`LOCK TABLE ${lockOnly}%I.%I IN SHARE MODE`, captured.schema, captured.name));
  } catch (err) {
    await release('ROLLBACK');
    const code = (err as { code?: string }).code;
    if (code === '55P03') return 'lock-timeout';
    if (code === '42501') {
      throw new CompareError(
        'lock_not_permitted',
        `the role of node "${plan.writerNode}" may not lock ${displayQualified(captured.schema, captured.name)} in SHARE mode`,
        'connect as the table\'s owner, or GRANT it UPDATE, DELETE or TRUNCATE on the table',
      );
    }
    throw err;
  }
  try {
    const tick = await forceTick(conns.ticker, plan.queue);
    for (const f of plan.followers) {
      if (!(await waitForPosition(plan, f, sessionOf(conns, f), tick, opts, requested + pauseMs - SNAPSHOT_MARGIN_MS))) {
        await release('ROLLBACK');
        return 'subscriber-slow';
      }
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
      `could not lock ${label} on node "${plan.writerNode}" within ${seconds} s without holding up its writers: ${holders.map(describeHolder).join('; ')} kept a lock on it`,
      'let that transaction finish (or end it: pg_stat_activity, pg_prepared_xacts), then compare again; --lock-wait waits longer',
    );
  }
  return new CompareError(
    'lock_timeout',
    `could not take a consistency point for ${label} on node "${plan.writerNode}" within ${seconds} s: ${round.report.attempts} lock attempts, each released after ${opts.maxPauseMs}–${opts.maxPauseCapMs} ms (${plan.followers.map((f) => `"${f.node}"`).join(' or ')} did not apply the tick in time, or writers kept beginning)`,
    'check that the apply worker keeps up (pgconvey status), then compare again; --lock-wait tries longer',
  );
}

/** The work session of a side that follows the writer. */
function sessionOf(conns: Connections, f: Follower): pg.Client {
  return f.side === 'provider' ? conns.provider : conns.subscriber;
}

/**
 * Waits until the side's subscription has applied `tick`. Without a deadline it fails
 * when the position stops moving for applyStallMs; with one (performance.now()
 * time, while compare holds a lock) it polls faster and answers false once it
 * has passed.
 */
async function waitForPosition(plan: PairPlan, follower: Follower, subscriber: pg.Client, tick: string, opts: Settings, deadline?: number): Promise<boolean> {
  let last: string | null | undefined;
  let movedAt = Date.now();
  for (;;) {
    const position = await completedTick(subscriber, plan.queue, follower.consumer);
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
        `no apply worker is advancing subscription "${follower.consumer}" of queue "${plan.queue}" on ${follower.display}: it stayed at tick ${position ?? 'none'} for ${Math.round(opts.applyStallMs / 1000)} s while compare waited for tick ${tick}`,
        'start it (`pgconvey run FILE`, or `pgconvey engine worker …`), then compare again',
      );
    }
    await sleep(20);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
