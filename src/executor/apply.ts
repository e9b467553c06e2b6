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
import type { ConnectionSpec } from '../config/connection.js';
import type { DesiredState } from '../config/index.js';
import { connect } from '../db/index.js';
import * as engine from '../engine/index.js';
import { queueSettings, type Action, type PgDumpTool, type Plan } from '../planner/index.js';
import { dumpTableDefinitions, type TableName } from './pg-dump.js';

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

/**
 * An action the server refused: the server's message with what was being
 * done, a stable code (`apply_permission_denied` for SQLSTATE 42501, else
 * `apply_action_failed`) and a hint. What ran before it stays done; running
 * apply again resumes at this action.
 */
export class ActionFailedError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly hint: string,
    readonly action: Action,
  ) {
    super(message);
    this.name = 'ActionFailedError';
  }
}

function actionFailed(action: Action, err: unknown): unknown {
  const sqlState = (err as { code?: unknown }).code;
  if (typeof sqlState !== 'string' || !/^[0-9A-Z]{5}$/.test(sqlState)) return err;
  const what = `action ${action.id} failed on database "${action.database}": ${(err as Error).message} (SQLSTATE ${sqlState})`;
  if (sqlState === '42501') {
    return new ActionFailedError('apply_permission_denied', what, 'the role of the file lacks a right this action needs: `pgconvey plan FILE` names the grants (see docs/security.md); give them and run apply again (what is done stays done)', action);
  }
  return new ActionFailedError('apply_action_failed', what, 'fix the cause and run apply again: every action is idempotent, and what is done stays done', action);
}

/** Advisory lock held by an apply on each database: class "pgcv" (as in the engine), key hashtext('apply'). */
const LOCK_SQL = "SELECT pg_try_advisory_lock(1885823862, hashtext('apply')) AS ok";
const HOLDER_SQL = `
  SELECT a.pid, a.application_name, a.client_addr::text AS addr, a.backend_start
    FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
   WHERE l.locktype = 'advisory' AND l.classid = 1885823862 AND l.objid = hashtext('apply')::oid AND l.granted LIMIT 1`;

/** The tools found on this machine when the plan was made (in this process): never read from a plan. */
export interface ExecutorTools {
  pgDump: PgDumpTool | null;
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
    for (const action of plan.actions) {
      hooks.onStart?.(action);
      const t0 = Date.now();
      try {
        await runAction(state, action, (db) => clients.get(db)!, tools);
      } catch (err) {
        const failed = actionFailed(action, err);
        hooks.onFailed?.(action, failed);
        throw failed;
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
      if (!tools.pgDump) throw new Error('copy_schema needs pg_dump, and none was found when this plan was made');
      await copySchema(tools.pgDump.path, provider.connection, subscriber.connection, a.params.tables as TableName[], db(provider.name), c);
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
  await subscriber.query(format(`CREATE ROLE %I WITH ${options.join(' ')}`, role.name));
  const superuser = (await provider.query<{ s: boolean }>('SELECT rolsuper AS s FROM pg_catalog.pg_roles WHERE rolname = current_user')).rows[0]!.s;
  if (!superuser || !role.canLogin) return;
  const hash = (await provider.query<{ h: string | null }>('SELECT rolpassword AS h FROM pg_catalog.pg_authid WHERE rolname = $1', [role.name])).rows[0]?.h;
  // A stored SCRAM or md5 hash is taken as is by ALTER ROLE … PASSWORD; the password itself is never seen.
  if (hash) await subscriber.query(format('ALTER ROLE %I PASSWORD %L', role.name, hash));
}

/** Creates the tables still missing on the subscriber from the provider's definitions, in one transaction. */
async function copySchema(
  pgDump: string,
  providerSpec: ConnectionSpec,
  subscriberSpec: ConnectionSpec,
  tables: TableName[],
  provider: pg.Client,
  subscriber: pg.Client,
): Promise<void> {
  const { rows } = await subscriber.query<{ s: string; t: string }>(
    'SELECT x.s, x.t FROM unnest($1::text[], $2::text[]) AS x(s, t) WHERE to_regclass(format(\'%I.%I\', x.s, x.t)) IS NULL',
    [tables.map((t) => t.schema), tables.map((t) => t.table)],
  );
  if (!rows.length) return;
  const sql = await dumpTableDefinitions(pgDump, providerSpec, rows.map((r) => ({ schema: r.s, table: r.t })));
  const schemas = await schemaDefinitions(provider, subscriber, [...new Set(rows.map((r) => r.s))]);
  // pg_dump's script changes session settings (search_path…): run it on a connection of its own.
  const target = await connect(subscriberSpec, 'copy_schema');
  try {
    await target.query('BEGIN');
    for (const statement of schemas) await target.query(statement);
    await target.query(sql);
    await target.query('COMMIT');
  } catch (err) {
    await target.query('ROLLBACK').catch(() => undefined);
    // Keeps the server's SQLSTATE, so a refusal is reported with its code.
    throw Object.assign(new Error(`creating ${rows.map((r) => `${r.s}.${r.t}`).join(', ')} from the provider's definitions failed: ${(err as Error).message}`), { code: (err as { code?: unknown }).code });
  } finally {
    await target.end();
  }
}

/** CREATE SCHEMA and GRANT statements for the schemas missing on the subscriber, with the provider's owner and privileges. */
async function schemaDefinitions(provider: pg.Client, subscriber: pg.Client, schemas: string[]): Promise<string[]> {
  const present = new Set((await subscriber.query<{ n: string }>('SELECT nspname AS n FROM pg_catalog.pg_namespace WHERE nspname = ANY($1)', [schemas])).rows.map((r) => r.n));
  const { rows } = await provider.query<{ schema: string; owner: string; grantee: string | null; privilege: string | null }>(
    `SELECT n.nspname AS schema, pg_catalog.pg_get_userbyid(n.nspowner) AS owner,
            CASE WHEN a.grantee = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(a.grantee) END AS grantee, a.privilege_type AS privilege
       FROM pg_catalog.pg_namespace n LEFT JOIN LATERAL pg_catalog.aclexplode(n.nspacl) a ON a.grantee <> n.nspowner
      WHERE n.nspname = ANY($1) ORDER BY 1, 3, 4`,
    [schemas.filter((x) => !present.has(x))],
  );
  const out: string[] = [];
  for (const r of rows) {
    if (!out.some((s) => s.startsWith(format('CREATE SCHEMA %I ', r.schema)))) out.push(format('CREATE SCHEMA %I AUTHORIZATION %I', r.schema, r.owner));
    if (r.privilege) out.push(format(`GRANT ${r.privilege === 'CREATE' ? 'CREATE' : 'USAGE'} ON SCHEMA %I TO ${r.grantee === null ? 'PUBLIC' : '%I'}`, r.schema, ...(r.grantee === null ? [] : [r.grantee])));
  }
  return out;
}

