/**
 * pg_dump for `prepare.schema: copy`: finding one on this machine (the
 * newest of PGCONVEY_PG_DUMP, PATH and the usual install directories), and
 * dumping a provider's schema as an archive (connection settings passed in
 * the environment, never on the command line) whose table of contents and
 * SQL pg_restore (found next to pg_dump) reads back.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { ConnectionSpec } from '../config/connection.js';
import { maskDsn, PgconveyError, scrubSecrets } from '../kernel/index.js';
import type { PgDumpTool } from '../planner/index.js';

const run = promisify(execFile);

function candidates(env: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  if (env.PGCONVEY_PG_DUMP) out.push(env.PGCONVEY_PG_DUMP);
  for (const dir of (env.PATH ?? '').split(delimiter)) if (dir) out.push(join(dir, 'pg_dump'));
  for (const base of ['/usr/lib/postgresql', '/usr/local/pgsql']) {
    if (!existsSync(base)) continue;
    for (const v of readdirSync(base)) out.push(join(base, v, 'bin', 'pg_dump'));
  }
  return [...new Set(out)].filter((p) => existsSync(p));
}

/** The newest pg_dump found (PGCONVEY_PG_DUMP wins when it is set and works), or null. */
export async function findPgDump(env: NodeJS.ProcessEnv = process.env): Promise<PgDumpTool | null> {
  const found: PgDumpTool[] = [];
  for (const path of candidates(env)) {
    try {
      const { stdout } = await run(path, ['--version']);
      const m = /(\d+)(?:\.(\d+))?/.exec(stdout);
      if (!m) continue;
      const tool = { path, major: Number(m[1]), version: stdout.trim().replace(/^pg_dump \(PostgreSQL\) /, '') };
      if (env.PGCONVEY_PG_DUMP && path === env.PGCONVEY_PG_DUMP) return tool;
      found.push(tool);
    } catch {
      // Not runnable: try the next one.
    }
  }
  return found.sort((a, b) => b.major - a.major)[0] ?? null;
}

export interface TableName {
  schema: string;
  table: string;
}

/** pg_restore next to a pg_dump (the same client tools), or null. */
export function pgRestoreOf(pgDump: string): string | null {
  const path = join(dirname(pgDump), 'pg_restore');
  return existsSync(path) ? path : null;
}

/** The environment that connects pg_dump to a database: connection settings there, never on the command line. */
function connectionEnv(spec: ConnectionSpec, app: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PGHOST: spec.host, PGPORT: spec.port?.toString(), PGUSER: spec.user, PGDATABASE: spec.dbname, PGSSLMODE: spec.sslmode, PGAPPNAME: app };
  if (spec.password !== undefined) env.PGPASSWORD = spec.password;
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  return env;
}

/** pg_dump or pg_restore failed, or is not usable (the message says which, passwords scrubbed). */
export class PgDumpError extends PgconveyError {
  constructor(message: string) {
    super('schema_copy_dump_failed', message, "let the provider's role read every object's definition (pg_dump --schema-only); install the full client tools (pg_dump with pg_restore)");
  }
}

/**
 * `pg_dump --schema-only -Fc` of the whole provider database (pgconvey's own
 * schema, publications and subscriptions left out) into `file`.
 */
export async function dumpSchemaArchive(pgDump: string, provider: ConnectionSpec, file: string): Promise<void> {
  const args = ['--schema-only', '--format=custom', '--no-tablespaces', '--no-publications', '--no-subscriptions', '--exclude-schema=pgconvey', '--file', file];
  try {
    await run(pgDump, args, { env: connectionEnv(provider, 'pgconvey:copy_schema'), maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stderr?: string; message?: string };
    throw new PgDumpError(`pg_dump failed: ${scrubSecrets(maskDsn((e.stderr || e.message || String(err)).trim()), provider.password ? [provider.password] : [])}`);
  }
}

/** `pg_restore -l` of an archive: its table of contents, in pg_dump's order. */
export async function archiveList(pgRestore: string, file: string): Promise<string> {
  return pgRestoreRun(pgRestore, ['--list', file]);
}

/** The SQL script of the archive's entries listed in `listFile` (in that file's order). */
export async function archiveScript(pgRestore: string, file: string, listFile: string): Promise<string> {
  return pgRestoreRun(pgRestore, ['--use-list', listFile, '--file', '-', file]);
}

async function pgRestoreRun(pgRestore: string, args: string[]): Promise<string> {
  try {
    return (await run(pgRestore, args, { maxBuffer: 256 * 1024 * 1024 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message?: string };
    throw new PgDumpError(`pg_restore failed: ${(e.stderr || e.message || String(err)).trim()}`);
  }
}
