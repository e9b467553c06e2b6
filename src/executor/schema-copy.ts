/**
 * `prepare.schema: copy`, with I/O: dump the provider's schema once
 * (pg_dump -Fc), choose the entries a subscriber needs (schema-toc.ts, from
 * the provider's pg_depend and what the subscriber already has), get their
 * SQL from pg_restore, and run it on the subscriber in one transaction, entry
 * by entry under a savepoint, with lock and statement timeouts. `plan` runs
 * it as a dry run (rolled back; the roles the plan creates are made in the
 * same transaction first) and reports each entry that fails with a code, a
 * hint and the object's name (in schemas the script creates, one entry per
 * shape of statement, see schema-shapes.ts); `apply` runs the same script for real. The
 * script is made in this process and never read from a plan file.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import type { ConnectionSpec } from '../config/connection.js';
import { connect } from '../db/index.js';
import { PgconveyError, sqlFormat as format } from '../kernel/index.js';
import type { PgDumpTool, SchemaCopyFindings, SchemaCopyProblem } from '../planner/index.js';
import { archiveList, archiveScript, dumpSchemaArchive, PgDumpError, pgRestoreOf, type TableName } from './pg-dump.js';
import { representativeEntries } from './schema-shapes.js';
import { describeEntry, parseToc, selectEntries, splitScript, type DependRow, type ObjectInfo, type ScriptEntry, type TocEntry } from './schema-toc.js';

export interface SchemaCopyRequest {
  /** The subscriber node, for messages. */
  node: string;
  provider: ConnectionSpec;
  subscriber: ConnectionSpec;
  /** Tables to create (selected, missing on the subscriber). */
  tables: TableName[];
  /** Every table the queue replicates. */
  selected: TableName[];
  mode: 'tables' | 'all';
  /** Roles the plan creates before the copy (made in the dry run's transaction first). */
  roles: string[];
}

/** A script ready to run on a subscriber, and what its dry run found. */
export interface PreparedSchemaCopy extends SchemaCopyFindings {
  preamble: string;
  entries: ScriptEntry[];
}

/** One provider's schema archive, dumped once per plan. */
export interface SchemaArchive {
  dir: string;
  file: string;
  entries: TocEntry[];
  pgRestore: string;
}

export const SCHEMA_COPY_TIMEOUTS = { lockMs: 10_000, statementMs: 300_000 } as const;

/** Dumps the provider's schema into a temporary archive; `releaseArchive` removes it. */
export async function dumpArchive(tool: PgDumpTool, provider: ConnectionSpec): Promise<SchemaArchive> {
  const pgRestore = pgRestoreOf(tool.path);
  if (!pgRestore) throw new PgDumpError(`there is no pg_restore next to ${tool.path}`);
  const dir = await mkdtemp(join(tmpdir(), 'pgconvey-schema-'));
  const file = join(dir, 'schema.dump');
  try {
    await dumpSchemaArchive(tool.path, provider, file);
    return { dir, file, pgRestore, entries: parseToc(await archiveList(pgRestore, file)) };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

export async function releaseArchive(archive: SchemaArchive): Promise<void> {
  await rm(archive.dir, { recursive: true, force: true });
}

/** pg_depend of the provider between user objects (oids from 16384): what the selection follows. */
const DEPENDS_SQL = `
  SELECT DISTINCT d.classid::pg_catalog.int8 || ':' || d.objid::pg_catalog.int8 AS obj,
         d.refclassid::pg_catalog.int8 || ':' || d.refobjid::pg_catalog.int8 AS ref, d.deptype::text AS type
    FROM pg_catalog.pg_depend d
   WHERE d.objid >= 16384 AND d.refobjid >= 16384 AND d.deptype IN ('n', 'a', 'i', 'e')`;

/** What identifies each entry's object (on both sides), its relkind, a constraint's index, pgconvey's triggers. */
const INFO_SQL = `
  SELECT x.c::pg_catalog.int8 || ':' || x.o::pg_catalog.int8 AS key, i.type || ' ' || i.identity AS identity,
         c.relkind::text AS relkind, ic.relname::text AS index_name, coalesce(t.tgname::text LIKE 'pgconvey\\_%', false) AS pgconvey
    FROM unnest($1::pg_catalog.int8[], $2::pg_catalog.int8[]) AS x(c, o)
   CROSS JOIN LATERAL pg_catalog.pg_identify_object(x.c::pg_catalog.oid, x.o::pg_catalog.oid, 0) i
    LEFT JOIN pg_catalog.pg_class c ON x.c::pg_catalog.oid = 'pg_catalog.pg_class'::pg_catalog.regclass AND c.oid = x.o::pg_catalog.oid
    LEFT JOIN pg_catalog.pg_constraint k ON x.c::pg_catalog.oid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND k.oid = x.o::pg_catalog.oid
    LEFT JOIN pg_catalog.pg_class ic ON ic.oid = k.conindid
    LEFT JOIN pg_catalog.pg_trigger t ON x.c::pg_catalog.oid = 'pg_catalog.pg_trigger'::pg_catalog.regclass AND t.oid = x.o::pg_catalog.oid`;

/** Keys of the named tables. */
const TABLE_KEYS_SQL = `
  SELECT 'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid::pg_catalog.int8 || ':' || c.oid::pg_catalog.int8 AS key
    FROM unnest($1::text[], $2::text[]) AS x(s, t)
    JOIN pg_catalog.pg_namespace n ON n.nspname = x.s JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = x.t`;

/** Catalogs whose objects pg_dump writes entries for. */
const CATALOGS = [
  'pg_namespace', 'pg_class', 'pg_type', 'pg_proc', 'pg_collation', 'pg_constraint', 'pg_trigger', 'pg_attrdef', 'pg_rewrite', 'pg_policy',
  'pg_statistic_ext', 'pg_extension', 'pg_cast', 'pg_conversion', 'pg_operator', 'pg_opclass', 'pg_opfamily', 'pg_ts_config', 'pg_ts_dict',
  'pg_ts_parser', 'pg_ts_template', 'pg_foreign_data_wrapper', 'pg_foreign_server', 'pg_event_trigger', 'pg_language', 'pg_transform', 'pg_am', 'pg_default_acl',
];

/** Identities of every object of those catalogs on the subscriber. */
const PRESENT_SQL = `
  SELECT i.type || ' ' || i.identity AS identity
    FROM (${CATALOGS.map((c) => `SELECT 'pg_catalog.${c}'::pg_catalog.regclass AS c, oid AS o FROM pg_catalog.${c}`).join(' UNION ALL ')}) x
   CROSS JOIN LATERAL pg_catalog.pg_identify_object(x.c, x.o, 0) i`;

/** Chooses the entries for one subscriber and gets their SQL; does not touch the subscriber beyond reading its catalog. */
export async function buildSchemaCopy(archive: SchemaArchive, req: SchemaCopyRequest, provider: pg.Client, subscriber: pg.Client): Promise<{ preamble: string; entries: ScriptEntry[]; unselected: Array<{ table: string; neededBy: string }> }> {
  const withObject = archive.entries.filter((e) => e.catalog !== 0);
  const depends = (await provider.query<DependRow>(DEPENDS_SQL)).rows;
  const info = new Map<string, ObjectInfo>();
  const rows = (await provider.query<{ key: string; identity: string | null; relkind: string | null; index_name: string | null; pgconvey: boolean }>(INFO_SQL, [withObject.map((e) => e.catalog), withObject.map((e) => e.oid)])).rows;
  for (const r of rows) {
    if (r.identity === null) continue;
    info.set(r.key, { identity: r.identity, ...(r.relkind ? { relkind: r.relkind } : {}), ...(r.index_name ? { indexName: r.index_name } : {}), ...(r.pgconvey ? { pgconvey: true } : {}) });
  }
  const keys = async (tables: TableName[]) => (await provider.query<{ key: string }>(TABLE_KEYS_SQL, [tables.map((t) => t.schema), tables.map((t) => t.table)])).rows.map((r) => r.key);
  const present = new Set((await subscriber.query<{ identity: string | null }>(PRESENT_SQL)).rows.map((r) => r.identity).filter((x): x is string => x !== null));
  const selection = selectEntries({ entries: archive.entries, depends, info, present, seeds: await keys(req.tables), selected: new Set(await keys(req.selected)), mode: req.mode });
  if (!selection.entries.length) return { preamble: '', entries: [], unselected: selection.unselected };
  const listFile = join(archive.dir, `${req.node.replace(/[^A-Za-z0-9_-]/g, '_')}.list`);
  await writeFile(listFile, `${selection.entries.map((e) => e.line).join('\n')}\n`);
  const script = splitScript(await archiveScript(archive.pgRestore, archive.file, listFile), selection.entries);
  if (!script) throw new PgDumpError("pg_restore's script does not match its list (entry headers out of step)");
  return { ...script, unselected: selection.unselected };
}

/** Script entries sent in one query (statement_timeout covers a whole query: a chunk stays well under it). */
const ENTRIES_PER_ROUND_TRIP = 200;

/** Session settings of pg_dump's preamble that pgconvey sets itself (timeouts). */
const OWN_SETTINGS = /^SET (?:statement_timeout|lock_timeout|idle_in_transaction_session_timeout|transaction_timeout) = .*;$/;

export interface EntryFailure {
  entry: TocEntry;
  error: Error & { code?: string };
}

/**
 * Runs a script on the subscriber (its own connection: the script changes
 * session settings) in one transaction, a chunk of entries per round trip
 * under a savepoint; a chunk that fails is run again entry by entry, each
 * under its own savepoint, to find the entries that fail.
 * dryRun: every entry is tried, the failures returned, and everything
 * rolled back. Otherwise the first failure rolls everything back and is
 * thrown as a SchemaCopyError; success commits.
 */
export async function runSchemaCopy(spec: ConnectionSpec, node: string, script: { preamble: string; entries: ScriptEntry[] }, options: { dryRun: boolean; roles?: string[] }): Promise<EntryFailure[]> {
  const client = await connect(spec, 'copy_schema');
  const failures: EntryFailure[] = [];
  try {
    await client.query('BEGIN');
    await client.query(`SET LOCAL lock_timeout = ${SCHEMA_COPY_TIMEOUTS.lockMs}; SET LOCAL statement_timeout = ${SCHEMA_COPY_TIMEOUTS.statementMs}`);
    const preamble = script.preamble.split('\n').filter((l) => !OWN_SETTINGS.test(l.trim())).join('\n');
    if (preamble.trim()) await client.query(preamble);
    for (const role of options.roles ?? []) {
      const exists = await client.query('SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1', [role]);
      if (!exists.rowCount) await client.query(format('CREATE ROLE %I', role));
    }
    const entries = script.entries.filter(({ sql }) => sql.trim() && !/^(?:--.*\n?)*$/.test(sql.trim()));
    // A chunk of entries in one round trip; only a chunk that fails is tried again entry by entry, to name what fails.
    for (let at = 0; at < entries.length && !(failures.length && !options.dryRun); at += ENTRIES_PER_ROUND_TRIP) {
      const chunk = entries.slice(at, at + ENTRIES_PER_ROUND_TRIP);
      await client.query('SAVEPOINT pgconvey_chunk');
      try {
        await client.query(chunk.map((e) => e.sql).join('\n'));
        await client.query('RELEASE SAVEPOINT pgconvey_chunk');
        continue;
      } catch {
        await client.query('ROLLBACK TO SAVEPOINT pgconvey_chunk');
      }
      for (const { entry, sql } of chunk) {
        await client.query('SAVEPOINT pgconvey_entry');
        try {
          await client.query(sql);
          await client.query('RELEASE SAVEPOINT pgconvey_entry');
        } catch (err) {
          await client.query('ROLLBACK TO SAVEPOINT pgconvey_entry');
          failures.push({ entry, error: err as EntryFailure['error'] });
          if (!options.dryRun) break;
        }
      }
    }
    if (options.dryRun || failures.length) {
      await client.query('ROLLBACK');
      if (!options.dryRun) throw schemaCopyError(node, failures[0]!);
    } else {
      await client.query('COMMIT');
    }
    return failures;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A failure of the real run, with the same code and hint as its dry run reports. */
/** A schema copy that failed or cannot run: its own code (schema_copy_failed, pg_dump_not_found…), what failed, the fix. */
export class SchemaCopyError extends PgconveyError {}

function schemaCopyError(node: string, failure: EntryFailure): SchemaCopyError {
  const p = problemOf(node, failure, false);
  return new SchemaCopyError(p.code, p.message, p.hint);
}

/** The code and hint for an entry that failed, by its SQLSTATE. */
export function problemOf(node: string, { entry, error }: EntryFailure, dryRun: boolean): SchemaCopyProblem {
  const object = describeEntry(entry);
  const state = error.code ?? 'unknown';
  const what = `${dryRun ? 'would fail' : 'failed (nothing was created)'}: ${error.message} (SQLSTATE ${state})`;
  if (entry.type === 'EXTENSION' && (state === '0A000' || state === '58P01' || state === '22023')) {
    return { code: 'schema_copy_extension_unavailable', object, message: `creating ${object} on node "${node}" ${what}`, hint: `install the extension's package for the subscriber's PostgreSQL on its server (e.g. apt-get install postgresql-NN-${entry.tag}), or drop its use on the provider` };
  }
  if (state === '42501') {
    return { code: 'schema_copy_not_permitted', object, message: `creating ${object} on node "${node}" ${what}`, hint: 'connect to the subscriber as a superuser (or a role that may create it and is a member of its owner), or create it there yourself before apply' };
  }
  if (state === '55P03' || state === '57014') {
    return { code: 'schema_copy_lock_timeout', object, message: `creating ${object} on node "${node}" ${what}`, hint: `a session on the subscriber holds a lock the copy needs for more than ${SCHEMA_COPY_TIMEOUTS.lockMs / 1000} s (see pg_locks); end it, then plan again` };
  }
  return {
    code: dryRun ? 'schema_copy_would_fail' : 'schema_copy_failed',
    object,
    message: `creating ${object} on node "${node}" ${what}`,
    hint: 'create it on the subscriber yourself (its definition: pg_dump --schema-only on the provider), or change it on the provider; then plan again. An error naming a missing object often follows from an earlier one',
  };
}

/**
 * The dry run for `plan`: the script and what stops it, for one subscriber.
 * A pg_dump/pg_restore failure is reported as schema_copy_dump_failed.
 */
export async function prepareSchemaCopy(archive: SchemaArchive, req: SchemaCopyRequest): Promise<PreparedSchemaCopy> {
  const provider = await connect(req.provider, 'copy_schema');
  const subscriber = await connect(req.subscriber, 'copy_schema');
  let built;
  try {
    await provider.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await subscriber.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    built = await buildSchemaCopy(archive, req, provider, subscriber);
  } finally {
    await provider.end().catch(() => undefined);
    await subscriber.end().catch(() => undefined);
  }
  const problems: SchemaCopyProblem[] = built.unselected.map((u) => ({
    code: 'schema_copy_needs_unselected_table',
    object: u.table,
    message: `${u.neededBy} needs ${u.table}, which the queue does not replicate and node "${req.node}" does not have`,
    hint: `add ${u.table.replace(/^table /, '')} to the queue's tables, or create it on the subscriber yourself`,
  }));
  const failures = built.entries.length ? await dryRun(req, built) : [];
  problems.push(...failures.map((f) => problemOf(req.node, f, true)));
  return { preamble: built.preamble, entries: built.entries, objects: built.entries.map((e) => ({ type: e.entry.type, name: describeEntry(e.entry) })), problems };
}

/**
 * The dry run of a script: first of one entry per shape in the schemas it creates (schema-shapes.ts), and
 * when that finds any failure, of the whole script, whose failures are the ones reported.
 */
async function dryRun(req: SchemaCopyRequest, built: { preamble: string; entries: ScriptEntry[] }): Promise<EntryFailure[]> {
  const tried = representativeEntries(built.entries);
  if (tried.length < built.entries.length) {
    const failures = await runSchemaCopy(req.subscriber, req.node, { preamble: built.preamble, entries: tried }, { dryRun: true, roles: req.roles });
    if (!failures.length) return [];
  }
  return runSchemaCopy(req.subscriber, req.node, built, { dryRun: true, roles: req.roles });
}
