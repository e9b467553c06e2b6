/**
 * Runs a plan's actions against the databases, reading nothing but the plan
 * and a connection spec per database name: each action names the databases
 * it needs (its own, its provider's) and carries its settings, so the desired
 * state is not consulted. Each database gets one connection holding
 * pgconvey's apply lock (a session advisory lock), taken for every database
 * before the first action runs, so two applies never interleave; a busy lock
 * is reported with who holds it. Every action calls an idempotent engine
 * function (its module in src/actions/ runs it), so an apply that died half
 * way is finished by running it again. The actions run in the plan's order
 * (schedule.ts), one at a time, except that a `copy_schema` runs in the
 * background on its own connections — the provider's captures go on
 * meanwhile — and what depends on it or runs on its subscriber's database
 * waits for it; the apply ends when every action has, and after a failure no
 * other action starts. Consecutive groupable actions on one database
 * (capture_table, add_subscriber_table) run many to a transaction
 * (groups.ts), in batches of one engine call where the kind has one
 * (capture_table); the others each in their own. Progress goes through hooks.
 * Nothing executable comes from the plan: `copy_schema` runs the pg_dump the
 * caller found (the one the plan was made with, in this process).
 */
import type pg from 'pg';
import { moduleOf, type Action, type ActionContext, type SchemaCopyRequest } from '../actions/index.js';
import type { ConnectionSpec } from '../config/index.js';
import { connect } from '../db/index.js';
import * as engine from '../engine/index.js';
import type { PgDumpTool, Plan } from '../planner/index.js';
import { ApplyLockedError } from './errors.js';
import { runGroup } from './groups.js';
import { runSchedule } from './schedule.js';
import { dumpArchive, prepareSchemaCopy, releaseArchive, runSchemaCopy, SchemaCopyError, type PreparedSchemaCopy } from './schema-copy.js';

export interface ExecutorHooks {
  onStart?(action: Action): void;
  onDone?(action: Action, ms: number): void;
  onFailed?(action: Action, error: unknown): void;
}

/** How to reach each database of a plan, by its name in the plan (`action.database`, a provider's database). */
export type DatabaseConnections = ReadonlyMap<string, ConnectionSpec>;

/** The connection specs of a desired state's databases (or any list of named databases), by name. */
export function connectionsOf(databases: ReadonlyArray<{ name: string; connection: ConnectionSpec }>): DatabaseConnections {
  return new Map(databases.map((d) => [d.name, d.connection]));
}

/** Advisory lock held by an apply on each database: class "pgcv" (as in the engine), key hashtext('apply'). */
const LOCK_SQL = engine.tryPieceLockSql("'apply'");
const HOLDER_SQL = `
  SELECT a.pid, a.application_name, a.client_addr::text AS addr, a.backend_start
    FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
   WHERE ${engine.pieceLockHeld('l', "'apply'")} LIMIT 1`;

/** The tools found on this machine when the plan was made (in this process): never read from a plan. */
export interface ExecutorTools {
  pgDump: PgDumpTool | null;
  /** The schema copy scripts the plan's dry runs tried, by action id (made in this process; absent: made again here). */
  schemaCopies?: ReadonlyMap<string, PreparedSchemaCopy>;
}

export async function executePlan(plan: Plan, connections: DatabaseConnections, hooks: ExecutorHooks = {}, tools: ExecutorTools = { pgDump: null }): Promise<void> {
  if (plan.errored) throw new Error('the plan has errors; fix them before applying');
  const spec = (name: string): ConnectionSpec => {
    const s = connections.get(name);
    if (!s) throw new Error(`internal: no connection for database "${name}", which the plan names`);
    return s;
  };
  const needed = [...new Set(plan.actions.flatMap((a) => moduleOf(a).databases(a)))];
  const clients = new Map<string, pg.Client>();
  try {
    for (const name of needed) {
      const client = await connect(spec(name), 'apply');
      clients.set(name, client);
      if (!(await client.query<{ ok: boolean }>(LOCK_SQL)).rows[0]!.ok) {
        const h = (await client.query(HOLDER_SQL)).rows[0];
        throw new ApplyLockedError(name, h ? `pid ${h.pid}, ${h.application_name || 'no application_name'}${h.addr ? ` from ${h.addr}` : ''}, since ${new Date(h.backend_start).toISOString()}` : 'holder unknown');
      }
    }
    // A schema copy prepared at plan time does not know what an earlier copy of this apply created in
    // the same database (two queues, one subscriber): the later one is prepared again when it runs.
    const copiedInto = new Set<string>();
    const ctx: ActionContext = {
      db: (name) => {
        const c = clients.get(name);
        if (!c) throw new Error(`internal: database "${name}" is not among the databases the action named`);
        return c;
      },
      engine,
      copySchema: async (request) => {
        await copySchema(request, spec, copiedInto.has(request.database) ? { pgDump: tools.pgDump } : tools);
        copiedInto.add(request.database);
      },
    };
    await runSchedule(plan.actions, {
      execute: (a) => moduleOf(a).execute(a, ctx),
      // Consecutive groupable actions on one database share a transaction (groups.ts).
      group: (run) =>
        runGroup(ctx.db(run[0]!.database), run, (a) => moduleOf(a).execute(a, ctx), hooks, (a) => {
          const m = moduleOf(a);
          return m.executeBatch ? (as) => m.executeBatch!(as as (typeof a)[], ctx) : undefined;
        }),
    }, hooks);
  } finally {
    await Promise.all([...clients.values()].map((c) => c.end().catch(() => undefined)));
  }
}

/** Runs a copy_schema: the script its dry run prepared in this process, or one prepared now from a fresh dump of the provider. */
async function copySchema(r: SchemaCopyRequest, spec: (database: string) => ConnectionSpec, tools: ExecutorTools): Promise<void> {
  const [provider, subscriber] = [spec(r.providerDatabase), spec(r.database)];
  if (!tools.pgDump) throw new SchemaCopyError('pg_dump_not_found', 'copy_schema needs pg_dump, and none was found when this plan was made', "install the client tools of the provider's major or newer, or set PGCONVEY_PG_DUMP");
  let prepared = tools.schemaCopies?.get(r.actionId);
  if (!prepared) {
    const archive = await dumpArchive(tools.pgDump, provider);
    try {
      prepared = await prepareSchemaCopy(archive, { node: r.node, provider, subscriber, tables: r.tables, selected: r.tables, mode: r.mode, roles: [] });
    } finally {
      await releaseArchive(archive);
    }
  }
  if (prepared.entries.length) await runSchemaCopy(subscriber, r.node, prepared, { dryRun: false });
}
