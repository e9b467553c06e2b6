/**
 * Runs a plan's actions in order against the databases. Each database gets
 * one connection holding pgconvey's apply lock (a session advisory lock), so
 * two applies never interleave; a busy lock is reported with who holds it.
 * Every action calls an idempotent engine function, so an apply that died
 * half way is finished by running it again. Progress goes through hooks.
 * Nothing executable comes from the plan: `copy_schema` runs the pg_dump the
 * caller found (the one the plan was made with, in this process).
 */
import { sqlFormat as format } from '../kernel/index.js';
import type pg from 'pg';
import type { RoleInfo } from '../catalog/index.js';
import type { DesiredState } from '../config/index.js';
import { connect } from '../db/index.js';
import * as engine from '../engine/index.js';
import { queueSettings, type Action, type PgDumpTool, type Plan } from '../planner/index.js';
import type { TableName } from './pg-dump.js';
import { dumpArchive, prepareSchemaCopy, releaseArchive, runSchemaCopy, SchemaCopyError, type PreparedSchemaCopy } from './schema-copy.js';

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

/** What to do when an action of this kind fails (the cause is in the message). */
const ACTION_HINTS: Record<Action['kind'], string> = {
  create_role: "the subscriber's role needs CREATEROLE (or to be a superuser); or create the role there yourself",
  grant_role: "the subscriber's role needs CREATEROLE or ADMIN OPTION on the granted role; or grant it there yourself",
  copy_schema: 'fix the cause on the subscriber or the provider',
  install_engine: 'the role needs CREATE on the database (see docs/security.md)',
  upgrade_engine: 'the role needs to own the pgconvey schema, or to be a superuser (see docs/security.md)',
  create_queue: "check the root's engine with `pgconvey status`",
  configure_queue: "check the root's engine with `pgconvey status`",
  capture_table: "the root's role must own the table (capture creates triggers on it), see docs/security.md",
  capture_sequence: "the root's role needs SELECT on the sequence",
  subscribe: 'check both engines with `pgconvey status`',
  add_subscriber_table: "check the subscriber's engine with `pgconvey status`",
  remove_subscriber_table: "check the subscriber's engine with `pgconvey status`",
  remove_sequence: "check the root's engine with `pgconvey status`",
  remove_consumer: "check the root's engine with `pgconvey status`",
  remove_capture: "the root's role must own the table (its capture triggers are dropped)",
};

/** An action that failed: its code (the schema copy's own, apply_permission_denied for SQLSTATE 42501, else apply_action_failed), a message naming it, a hint. */
export class ApplyActionError extends Error {
  readonly code: string;
  readonly hint: string;
  constructor(
    readonly action: Action,
    cause: unknown,
  ) {
    const sqlState = (cause as { code?: unknown }).code;
    const why = cause instanceof Error ? cause.message : String(cause);
    const state = typeof sqlState === 'string' && /^[0-9A-Z]{5}$/.test(sqlState) ? ` (SQLSTATE ${sqlState})` : '';
    super(cause instanceof SchemaCopyError ? `action ${action.id}: ${why}` : `action ${action.id} failed: ${why}${state}`);
    this.name = 'ApplyActionError';
    // A right the server refused (42501): the plan names the grants (src/planner/privileges.ts).
    const denied = !(cause instanceof SchemaCopyError) && sqlState === '42501';
    this.code = cause instanceof SchemaCopyError ? cause.code : denied ? 'apply_permission_denied' : 'apply_action_failed';
    const base = cause instanceof SchemaCopyError
      ? cause.hint
      : denied
        ? `${ACTION_HINTS[action.kind]}; \`pgconvey plan FILE\` names the grants the file's roles lack (see docs/security.md)`
        : ACTION_HINTS[action.kind];
    this.hint = `${base}; then run apply again (every action is idempotent: what is done is skipped)`;
  }
}

/**
 * Any failure of an apply, as what the command prints: an action's failure
 * (apply_action_failed, or the schema copy's own code), the apply lock, or
 * anything else (apply_failed) — always a code, a message and a hint.
 */
export function applyFailure(err: unknown): { code: string; message: string; hint: string } {
  if (err instanceof ApplyActionError) return { code: err.code, message: err.message, hint: err.hint };
  if (err instanceof ApplyLockedError) return { code: 'apply_locked', message: err.message, hint: 'wait for it to finish, then run apply again' };
  return { code: 'apply_failed', message: `apply stopped: ${(err as Error)?.message ?? String(err)}`, hint: 'run apply again (every action is idempotent); if it fails the same way, report it with this message' };
}

export async function executePlan(state: DesiredState, plan: Plan, hooks: ExecutorHooks = {}, tools: ExecutorTools = { pgDump: null }): Promise<void> {
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
    // A schema copy prepared at plan time does not know what an earlier copy of this apply created in
    // the same database (two queues, one subscriber): the later one is prepared again when it runs.
    const copiedInto = new Set<string>();
    for (const action of plan.actions) {
      hooks.onStart?.(action);
      const t0 = Date.now();
      try {
        const fresh = action.kind === 'copy_schema' && copiedInto.has(action.database);
        await runAction(state, action, (db) => clients.get(db)!, fresh ? { pgDump: tools.pgDump } : tools);
        if (action.kind === 'copy_schema') copiedInto.add(action.database);
      } catch (err) {
        const failure = err instanceof ApplyActionError ? err : new ApplyActionError(action, err);
        hooks.onFailed?.(action, failure);
        throw failure;
      }
      hooks.onDone?.(action, Date.now() - t0);
    }
  } finally {
    await Promise.all([...clients.values()].map((c) => c.end().catch(() => undefined)));
  }
}

/** The root database of an action's queue, when the action needs it too (subscribing, copying roles or tables). */
function providerOf(state: DesiredState, action: Action): string[] {
  if (action.kind !== 'subscribe' && action.kind !== 'create_role' && action.kind !== 'copy_schema') return [];
  const queue = state.queues.find((q) => q.name === action.queue)!;
  return [queue.nodes.find((n) => n.type === 'root')!.database];
}

async function runAction(state: DesiredState, a: Action, db: (name: string) => pg.Client, tools: ExecutorTools): Promise<void> {
  const c = db(a.database);
  const p = a.params as Record<string, string & string[]>;
  const queue = a.queue ? state.queues.find((q) => q.name === a.queue) : undefined;
  switch (a.kind) {
    case 'create_role':
      await createRole(db(providerOf(state, a)[0]!), c, a.params.role as RoleInfo);
      return;
    case 'grant_role':
      await c.query(format('GRANT %I TO %I', p.parent, p.member));
      return;
    case 'copy_schema': {
      const provider = state.databases.find((d) => d.name === providerOf(state, a)[0])!;
      const subscriber = state.databases.find((d) => d.name === a.database)!;
      if (!tools.pgDump) throw new SchemaCopyError('pg_dump_not_found', 'copy_schema needs pg_dump, and none was found when this plan was made', 'install the client tools of the provider\'s major or newer, or set PGCONVEY_PG_DUMP');
      let prepared = tools.schemaCopies?.get(a.id);
      if (!prepared) {
        const archive = await dumpArchive(tools.pgDump, provider.connection);
        try {
          prepared = await prepareSchemaCopy(archive, { node: a.node, provider: provider.connection, subscriber: subscriber.connection, tables: a.params.tables as TableName[], selected: a.params.tables as TableName[], mode: (a.params.mode as 'tables' | 'all' | undefined) ?? 'tables', roles: [] });
        } finally {
          await releaseArchive(archive);
        }
      }
      if (prepared.entries.length) await runSchemaCopy(subscriber.connection, a.node, prepared, { dryRun: false });
      return;
    }
    case 'install_engine':
    case 'upgrade_engine':
      await engine.installEngine(c);
      return;
    case 'create_queue':
      await engine.createQueue(c, a.queue!, queueSettings(queue!));
      return;
    case 'configure_queue':
      await engine.configureQueue(c, a.queue!, queueSettings(queue!));
      return;
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
    case 'remove_consumer':
      await engine.unregisterConsumer(c, a.queue!, p.consumer);
      return;
    case 'remove_capture':
      await engine.removeTable(c, a.queue!, p.schema, p.table);
      return;
  }
}

/** Creates a role as on the provider (unless it exists by now), with its password hash when the provider lets us read it. */
async function createRole(provider: pg.Client, subscriber: pg.Client, role: RoleInfo): Promise<void> {
  const exists = await subscriber.query('SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1', [role.name]);
  if (exists.rowCount) return;
  const a = role.attributes;
  const flag = (on: boolean, word: string) => (on ? word : `NO${word}`);
  const options = [
    flag(role.canLogin, 'LOGIN'),
    flag(role.superuser, 'SUPERUSER'),
    flag(a.inherit, 'INHERIT'),
    flag(a.createRole, 'CREATEROLE'),
    flag(a.createDb, 'CREATEDB'),
    flag(a.replication, 'REPLICATION'),
    flag(a.bypassRls, 'BYPASSRLS'),
    `CONNECTION LIMIT ${Number(a.connectionLimit)}`,
  ];
  try {
    await subscriber.query(format(`CREATE ROLE %I WITH ${options.join(' ')}`, role.name));
  } catch (err) {
    // Made meanwhile by another session (roles are the server's, not one database's): it exists, as wanted.
    if ((err as { code?: string }).code === '42710') return;
    throw err;
  }
  const superuser = (await provider.query<{ s: boolean }>('SELECT rolsuper AS s FROM pg_catalog.pg_roles WHERE rolname = current_user')).rows[0]!.s;
  if (!superuser || !role.canLogin) return;
  const hash = (await provider.query<{ h: string | null }>('SELECT rolpassword AS h FROM pg_catalog.pg_authid WHERE rolname = $1', [role.name])).rows[0]?.h;
  // A stored SCRAM or md5 hash is taken as is by ALTER ROLE … PASSWORD; the password itself is never seen.
  if (hash) await subscriber.query(format('ALTER ROLE %I PASSWORD %L', role.name, hash));
}
