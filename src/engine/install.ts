/**
 * Installing and upgrading the engine in a database: the numbered migrations
 * in sql/ (tables), sql/functions.sql (every function, re-created) and
 * sql/captures.sql (capture functions brought to the current row format), run
 * in one transaction under an advisory lock, recorded in pgconvey.engine with
 * the migration number AND the content version (sha256 of all that SQL), so a
 * fix to functions.sql alone reaches installed databases. Installing the
 * installed content changes nothing; an engine with fewer migrations or other
 * content is upgraded in place; one with more migrations is refused.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import type pg from 'pg';
import { PgconveyError } from '../kernel/index.js';
import { INSTALL_LOCK_KEY } from './locks.js';

const SQL_DIR = new URL('../../src/engine/sql/', import.meta.url);

export { INSTALL_LOCK_KEY };

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** The SQL of one engine build: what an install runs. */
export interface EngineSources {
  migrations: Migration[];
  functions: string;
  captures: string;
}

/** What identifies an engine build: its newest migration and the sha256 of all its SQL. */
export interface EngineBuild {
  version: number;
  content: string;
}

/** Reads an engine build's SQL from a directory laid out like src/engine/sql/ (default: this pgconvey's). */
export function engineSources(dir: URL = SQL_DIR): EngineSources {
  const migrations = readdirSync(dir)
    .filter((f) => /^\d{4}_.+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: Number(f.slice(0, 4)), name: f, sql: readFileSync(new URL(f, dir), 'utf8') }));
  return { migrations, functions: readFileSync(new URL('functions.sql', dir), 'utf8'), captures: readFileSync(new URL('captures.sql', dir), 'utf8') };
}

/** The build of some sources: the newest migration's number, and the sha256 of every file's name and text, in install order. */
export function engineBuild(sources: EngineSources): EngineBuild {
  const hash = createHash('sha256').update('pgconvey-engine\n');
  const files: Array<[string, string]> = [...sources.migrations.map((m) => [m.name, m.sql] as [string, string]), ['functions.sql', sources.functions], ['captures.sql', sources.captures]];
  for (const [name, text] of files) hash.update(`${name}\n${Buffer.byteLength(text)}\n`).update(text).update('\n');
  return { version: Math.max(...sources.migrations.map((m) => m.version)), content: hash.digest('hex') };
}

/** This pgconvey's engine SQL, read once. */
export const ENGINE_SOURCES = engineSources();
export const ENGINE_BUILD: EngineBuild = engineBuild(ENGINE_SOURCES);
/** The migration number this pgconvey installs: its newest migration. */
export const ENGINE_VERSION = ENGINE_BUILD.version;
/** The content version this pgconvey installs (sha256 hex of its engine SQL). */
export const ENGINE_CONTENT = ENGINE_BUILD.content;

/** The first 12 hex digits of a content version, as shown to people. */
export function shortContent(content: string | null): string {
  return content === null ? 'not recorded' : content.slice(0, 12);
}

export function migrations(): Migration[] {
  return ENGINE_SOURCES.migrations;
}

export interface InstalledEngine {
  version: number;
  /** Null when installed by a pgconvey that did not record it, or only up to an older migration. */
  content: string | null;
  installedAt: Date;
  upgradedAt: Date | null;
}

export interface InstallResult {
  action: 'installed' | 'upgraded' | 'unchanged';
  from: number | null;
  to: number;
  fromContent: string | null;
  toContent: string | null;
}

export class EngineVersionError extends PgconveyError {
  declare readonly code: 'engine_too_new';
  constructor(
    readonly installed: number,
    readonly supported: number,
  ) {
    super(
      'engine_too_new',
      `the pgconvey engine in this database is version ${installed}, newer than this pgconvey (${supported})`,
      'use a pgconvey at least as new as the one that installed it (pgconvey never downgrades an engine: a newer one may have changed tables an older one cannot read)',
    );
  }
}

/** The installed engine, or null when the engine is not installed. */
export async function installedEngine(client: pg.Client): Promise<InstalledEngine | null> {
  const { rows } = await client.query<{ present: boolean }>("SELECT pg_catalog.to_regclass('pgconvey.engine') IS NOT NULL AS present");
  if (!rows[0]!.present) return null;
  // to_jsonb reads the content column without knowing whether it exists yet (an engine installed before it).
  const r = await client.query<{ version: number; content: string | null; installed_at: Date; upgraded_at: Date | null }>(
    "SELECT e.version, pg_catalog.to_jsonb(e) OPERATOR(pg_catalog.->>) 'content' AS content, e.installed_at, e.upgraded_at FROM pgconvey.engine e",
  );
  const e = r.rows[0];
  return e ? { version: e.version, content: e.content, installedAt: e.installed_at, upgradedAt: e.upgraded_at } : null;
}

/** The installed engine's migration number, or null when the engine is not installed. */
export async function installedVersion(client: pg.Client): Promise<number | null> {
  return (await installedEngine(client))?.version ?? null;
}

export interface InstallOptions {
  /** Install only up to this migration (tests; the content is then not recorded). Default: all. */
  targetVersion?: number;
  /** The SQL to install. Default: this pgconvey's. */
  sources?: EngineSources;
}

/**
 * Installs the engine, or upgrades it in place to these sources when its
 * migration number is lower or its content differs. `client` must not be
 * inside a transaction. Refuses (EngineVersionError) an engine with a newer
 * migration than the sources have.
 */
export async function installEngine(client: pg.Client, options: number | InstallOptions = {}): Promise<InstallResult> {
  const o = typeof options === 'number' ? { targetVersion: options } : options;
  const sources = o.sources ?? ENGINE_SOURCES;
  const build = engineBuild(sources);
  const target = o.targetVersion ?? build.version;
  const content = target >= build.version ? build.content : null;
  for (let attempt = 1; ; attempt++) {
    try {
      return await installOnce(client, sources, build.version, target, content);
    } catch (err) {
      // Should a deadlock with the application or a daemon still cancel the upgrade, it starts again.
      if ((err as { code?: string }).code !== '40P01' || attempt >= 5) throw err;
    }
  }
}

async function installOnce(client: pg.Client, sources: EngineSources, newest: number, target: number, content: string | null): Promise<InstallResult> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_catalog.pg_advisory_xact_lock($1)', [INSTALL_LOCK_KEY]);
    const from = await installedEngine(client);
    if (from !== null && from.version > newest) throw new EngineVersionError(from.version, newest);
    if (from !== null && from.version >= target && (content === null || from.content === content)) {
      await client.query('COMMIT');
      return { action: 'unchanged', from: from.version, to: from.version, fromContent: from.content, toContent: from.content };
    }
    // Quiet NOTICEs like "schema already exists" while installing.
    await client.query("SET LOCAL client_min_messages = 'warning'");
    // SQL function bodies may name tables of migrations an older target version lacks (as pg_dump does).
    await client.query('SET LOCAL check_function_bodies = off');
    // The content column, first: before the captured tables are locked, so a session that read the
    // engine row and then waits for one of them does not hold this ALTER TABLE back.
    if (from !== null && !(await hasContentColumn(client))) await client.query('ALTER TABLE pgconvey.engine ADD COLUMN content text');
    const pending = sources.migrations.filter((m) => (from === null || m.version > from.version) && m.version <= target);
    if (from !== null && pending.length) await lockCapturedTables(client);
    for (const m of pending) await client.query(m.sql);
    if (from === null) await client.query('ALTER TABLE pgconvey.engine ADD COLUMN IF NOT EXISTS content text');
    await client.query(sources.functions);
    // Row shapes exist from migration 0006 on.
    if (target >= 6) await client.query(sources.captures);
    await client.query(
      `INSERT INTO pgconvey.engine (version, content) VALUES ($1, $2)
       ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version, content = EXCLUDED.content, upgraded_at = pg_catalog.now()`,
      [target, content],
    );
    await client.query('COMMIT');
    return { action: from === null ? 'installed' : 'upgraded', from: from?.version ?? null, to: target, fromContent: from?.content ?? null, toContent: content };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

async function hasContentColumn(client: pg.Client): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>(
    "SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = 'pgconvey.engine'::pg_catalog.regclass AND attname = 'content' AND NOT attisdropped) AS ok",
  );
  return rows[0]!.ok;
}

/**
 * Before migrations run on an engine in use: every captured table locked
 * against writes (SHARE ROW EXCLUSIVE, as CREATE TRIGGER takes), so writers
 * wait for the upgrade's commit and then capture in the new format. A
 * migration may rewrite the event tables and captures.sql makes capture
 * triggers again: a writer that had passed its table's lock and then waited
 * for an event table the upgrade holds would deadlock with it. The locks are
 * taken all at once with a short lock_timeout inside a savepoint, and given
 * back and tried again when they time out, so a writer in the middle of a
 * transaction over two captured tables is never a deadlock victim: the
 * upgrade steps back instead (for at most LOCK_PATIENCE_MS).
 */
const LOCK_TRY_MS = 200;
const LOCK_PATIENCE_MS = 120_000;

async function lockCapturedTables(client: pg.Client): Promise<void> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT pg_catalog.format('%I.%I', c.table_schema, c.table_name) AS name
       FROM pgconvey.captured_table c
      WHERE pg_catalog.to_regclass(pg_catalog.format('%I.%I', c.table_schema, c.table_name)) IS NOT NULL
      ORDER BY pg_catalog.to_regclass(pg_catalog.format('%I.%I', c.table_schema, c.table_name))::pg_catalog.oid`,
  );
  if (!rows.length) return;
  const previous = (await client.query<{ t: string }>("SELECT pg_catalog.current_setting('lock_timeout') AS t")).rows[0]!.t;
  const until = Date.now() + LOCK_PATIENCE_MS;
  for (;;) {
    await client.query('SAVEPOINT pgconvey_lock_tables');
    try {
      await client.query(`SELECT pg_catalog.set_config('lock_timeout', '${LOCK_TRY_MS}ms', true)`);
      await client.query(`LOCK TABLE ${rows.map((r) => r.name).join(', ')} IN SHARE ROW EXCLUSIVE MODE`);
      await client.query('RELEASE SAVEPOINT pgconvey_lock_tables');
      await client.query("SELECT pg_catalog.set_config('lock_timeout', $1, true)", [previous]);
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== '55P03' || Date.now() > until) throw err;
      await client.query('ROLLBACK TO SAVEPOINT pgconvey_lock_tables');
      await new Promise((r) => setTimeout(r, 10 + Math.floor(Math.random() * 50)));
    }
  }
}
