/**
 * pg_dump for `prepare.schema: copy`: finding one on this machine (the
 * newest of PGCONVEY_PG_DUMP, PATH and the usual install directories), and
 * dumping table definitions from a provider — connection settings passed in
 * the environment, never on the command line — as SQL a subscriber can run.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import type { ConnectionSpec } from '../config/connection.js';
import { maskDsn, scrubSecrets } from '../kernel/index.js';
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

/**
 * The SQL that creates `tables` (with their indexes, constraints, owned
 * sequences, owners and grants) as on the provider. pg_dump's psql
 * meta-commands and pgconvey's own capture triggers are left out.
 */
export async function dumpTableDefinitions(pgDump: string, provider: ConnectionSpec, tables: TableName[]): Promise<string> {
  const quote = (s: string) => `"${s.replace(/"/g, '""')}"`;
  const args = ['--schema-only', '--strict-names', '--no-tablespaces', ...tables.flatMap((t) => ['--table', `${quote(t.schema)}.${quote(t.table)}`])];
  const env: NodeJS.ProcessEnv = { ...process.env, PGHOST: provider.host, PGPORT: provider.port?.toString(), PGUSER: provider.user, PGDATABASE: provider.dbname, PGSSLMODE: provider.sslmode, PGAPPNAME: 'pgconvey:copy_schema' };
  if (provider.password !== undefined) env.PGPASSWORD = provider.password;
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  try {
    const { stdout } = await run(pgDump, args, { env, maxBuffer: 256 * 1024 * 1024 });
    return stdout
      .split('\n')
      .filter((line) => !line.startsWith('\\') && !/^CREATE (?:CONSTRAINT )?TRIGGER .* pgconvey\./.test(line))
      .join('\n');
  } catch (err) {
    const e = err as { stderr?: string; message?: string };
    throw new Error(`pg_dump failed: ${scrubSecrets(maskDsn((e.stderr || e.message || String(err)).trim()), provider.password ? [provider.password] : [])}`);
  }
}
