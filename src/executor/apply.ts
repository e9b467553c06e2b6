/**
 * Runs a plan's actions in order against the databases. Each database gets
 * one connection holding pgconvey's apply lock (a session advisory lock), so
 * two applies never interleave; a busy lock is reported with who holds it.
 * Every action calls an idempotent engine function, so an apply that died
 * half way is finished by running it again. Progress goes through hooks.
 */
import type pg from 'pg';
import type { DesiredState } from '../config/index.js';
import { connect } from '../db/index.js';
import * as engine from '../engine/index.js';
import type { Action, Plan } from '../planner/index.js';

export interface ExecutorHooks {
  onStart?(action: Action): void;
  onDone?(action: Action, ms: number): void;
  onFailed?(action: Action, error: unknown): void;
}

export class ApplyLockedError extends Error {
  constructor(
    readonly database: string,
    readonly holder: string,
  ) {
    super(`another pgconvey apply is running on database "${database}" (${holder})`);
    this.name = 'ApplyLockedError';
  }
}

/** Advisory lock held by an apply on each database: class "pgcv" (as in the engine), key hashtext('apply'). */
const LOCK_SQL = "SELECT pg_try_advisory_lock(1885823862, hashtext('apply')) AS ok";
const HOLDER_SQL = `
  SELECT a.pid, a.application_name, a.client_addr::text AS addr, a.backend_start
    FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
   WHERE l.locktype = 'advisory' AND l.classid = 1885823862 AND l.objid = hashtext('apply')::oid AND l.granted LIMIT 1`;

export async function executePlan(state: DesiredState, plan: Plan, hooks: ExecutorHooks = {}): Promise<void> {
  if (plan.errored) throw new Error('the plan has errors; fix them before applying');
  const needed = [...new Set(plan.actions.flatMap((a) => [a.database, ...providerOf(state, a)]))];
  const clients = new Map<string, pg.Client>();
  try {
    for (const name of needed) {
      const spec = state.databases.find((d) => d.name === name)!;
      const client = await connect(spec.connection, 'apply');
      clients.set(name, client);
      if (!(await client.query<{ ok: boolean }>(LOCK_SQL)).rows[0]!.ok) {
        const h = (await client.query(HOLDER_SQL)).rows[0];
        throw new ApplyLockedError(name, h ? `pid ${h.pid}, ${h.application_name || 'no application_name'}${h.addr ? ` from ${h.addr}` : ''}, since ${new Date(h.backend_start).toISOString()}` : 'holder unknown');
      }
    }
    for (const action of plan.actions) {
      hooks.onStart?.(action);
      const t0 = Date.now();
      try {
        await runAction(state, action, (db) => clients.get(db)!);
      } catch (err) {
        hooks.onFailed?.(action, err);
        throw err;
      }
      hooks.onDone?.(action, Date.now() - t0);
    }
  } finally {
    await Promise.all([...clients.values()].map((c) => c.end().catch(() => undefined)));
  }
}

/** The root database of an action's queue, when the action needs it too (subscribing). */
function providerOf(state: DesiredState, action: Action): string[] {
  if (action.kind !== 'subscribe') return [];
  const queue = state.queues.find((q) => q.name === action.queue)!;
  return [queue.nodes.find((n) => n.type === 'root')!.database];
}

async function runAction(state: DesiredState, a: Action, db: (name: string) => pg.Client): Promise<void> {
  const c = db(a.database);
  const p = a.params as Record<string, string & string[]>;
  const queue = a.queue ? state.queues.find((q) => q.name === a.queue) : undefined;
  switch (a.kind) {
    case 'install_engine':
    case 'upgrade_engine':
      await engine.installEngine(c);
      return;
    case 'create_queue': {
      const d = queue!.daemons;
      await engine.createQueue(c, a.queue!, {
        tickerMaxCount: d.ticker.maxEvents,
        tickerMaxLagMs: d.ticker.maxLagMs,
        tickerIdlePeriodMs: d.ticker.idlePeriodMs,
        rotationTxids: d.maintenance.rotationTransactions,
        tickRetentionMs: d.maintenance.tickRetentionMs,
      });
      return;
    }
    case 'capture_table':
      await engine.addTable(c, a.queue!, p.schema, p.table, p.keyColumns);
      return;
    case 'capture_sequence':
      await engine.addSequence(c, a.queue!, p.schema, p.sequence);
      return;
    case 'subscribe':
      await engine.subscribe(db(providerOf(state, a)[0]!), c, a.queue!, p.consumer);
      return;
    case 'add_subscriber_table':
      await engine.addSubscriberTable(c, a.queue!, p.consumer, p.schema, p.table, 'pending');
      return;
    case 'remove_subscriber_table':
      await engine.removeSubscriberTable(c, a.queue!, p.consumer, p.schema, p.table);
      return;
    case 'remove_sequence':
      await engine.removeSequence(c, a.queue!, p.schema, p.sequence);
      return;
    case 'remove_capture':
      await engine.removeTable(c, a.queue!, p.schema, p.table);
      return;
  }
}
