/**
 * What every benchmark script shares for its report: finding the
 * command-line tools it compares with, naming the commit, the machine (with
 * its load), the versions and the server settings it measured at, markdown
 * tables, appending its section to docs/benchmarks.md, and exiting non-zero
 * with the stack on failure.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import pg from 'pg';
import type { RunningServer } from '../src/embedded/index.js';

/** The absolute path of a tool, or an error naming the package that brings it. */
export function requireTool(tool: string, install: string): string {
  try {
    return execFileSync('which', [tool], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`${tool} is not installed: apt-get update && apt-get install -y ${install}`);
  }
}

export function gitCommit(): string {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', 'src'], { encoding: 'utf8' }).trim();
    return dirty ? `${sha} (src/ modified)` : sha;
  } catch {
    return 'unknown';
  }
}

/** The machine and its load right now. */
export function machine(): string {
  const [l1, l5] = loadavg();
  return `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, load average ${l1!.toFixed(2)} (5 min ${l5!.toFixed(2)}); Node ${process.version}`;
}

/** One server's version and the settings that matter to a benchmark, as read from it. */
export async function serverLine(role: string, s: RunningServer): Promise<string> {
  const c = new pg.Client({ host: s.host, port: s.port, user: 'postgres', database: 'postgres' });
  await c.connect();
  try {
    const names = ['wal_level', 'fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'max_wal_size'];
    const { rows } = await c.query<{ name: string; setting: string }>('SELECT name, current_setting(name) AS setting FROM pg_settings WHERE name = ANY ($1) ORDER BY name', [names]);
    return `${role} PostgreSQL ${s.version} (${rows.map((r) => `${r.name}=${r.setting}`).join(', ')})`;
  } finally {
    await c.end();
  }
}

/** The tools' version (pg_dump, psql, pgbench come from Debian's PostgreSQL 15 packages here). */
export function toolVersion(tool: string): string {
  try {
    return /\d+\.\d+/.exec(execFileSync(tool, ['--version'], { encoding: 'utf8' }))?.[0] ?? '?';
  } catch {
    return 'missing';
  }
}

/** The standard head of a section: title, command, commit, machine, servers, time taken. */
export async function header(title: string, command: string, started: number, servers: Array<[string, RunningServer]>, quick: boolean): Promise<string[]> {
  return [
    `### ${title} — ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC${quick ? ' (--quick smoke run: not a measurement)' : ''}`,
    '',
    `Command: \`${command}\` at commit ${gitCommit()} (took ${Math.round((Date.now() - started) / 1000)} s).`,
    `Machine: ${machine()}.`,
    `Servers, both on this machine: ${(await Promise.all(servers.map(([r, s]) => serverLine(r, s)))).join('; ')}. Tools: pg_dump/psql/pgbench ${toolVersion('pg_dump')}.`,
  ];
}

export function mdTable(head: string[], rows: string[][]): string[] {
  return [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)];
}

/** Prints a report section and appends it to docs/benchmarks.md, or to $BENCH_REPORT (a --quick run only prints, unless BENCH_PUBLISH_QUICK is set). */
export function publish(report: string, quick = false): void {
  process.stdout.write(`\n${report}\n`);
  if (quick && !process.env.BENCH_PUBLISH_QUICK) return;
  const file = process.env.BENCH_REPORT ?? 'docs/benchmarks.md';
  if (!existsSync(file)) writeFileSync(file, '# Benchmarks\n\nNumbers written by the scripts in bench/; newest last.\n');
  appendFileSync(file, `\n${report}\n`);
}

/** The command line this script was started with, for the report. */
export function commandLine(npmScript: string): string {
  const args = process.argv.slice(2);
  return `npm run ${npmScript}${args.length ? ` -- ${args.join(' ')}` : ''}`;
}

/** Runs a script's main, exiting 1 with the stack when it fails. */
export function runMain(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
}
