/**
 * What the benchmarks share: production-like local servers, short-lived
 * clients, pgbench and shell runs, interleaved rounds and their medians, the
 * real `pgconvey run` as a child process (with its peak RSS), desired-state
 * files planned and applied as `pgconvey apply` does, and the "caught up"
 * checks of pgconvey and of native logical replication.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startServer, type RunningServer } from '../src/embedded/index.js';
import { applyPlan, planFile } from '../src/workflow/index.js';
import { requireTool } from './report.js';

export const log = (msg: string) => process.stdout.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

/**
 * The settings every bench runs at: durable (fsync, synchronous_commit and
 * full_page_writes on — a server that may lose committed data is no
 * production server), the source at wal_level=logical (native logical
 * replication needs it; pgconvey does not), the target at replica (what a
 * server with backups or standbys runs; `minimal` would let a TRUNCATE+COPY in
 * one transaction skip WAL, which no baseline can use). shared_buffers 128MB,
 * max_wal_size 1GB, checkpoint_timeout 30min: a small server, no checkpoint
 * storm in the middle of a round.
 */
export async function startBenchServers(
  sourceMajor: number,
  targetMajor: number,
  extra: { source?: Record<string, string | number>; target?: Record<string, string | number> } = {},
): Promise<{ source: RunningServer; target: RunningServer }> {
  const [source, target] = await Promise.all([
    startServer({ major: sourceMajor, durable: true, logical: true, settings: { max_replication_slots: 20, max_wal_senders: 20, ...extra.source } }),
    startServer({ major: targetMajor, durable: true, settings: { ...extra.target } }),
  ]);
  return { source, target };
}

export function connect(s: RunningServer, db: string): Promise<pg.Client> {
  const c = new pg.Client({ host: s.host, port: s.port, user: 'postgres', database: db });
  return c.connect().then(() => c);
}

export async function withClient<T>(s: RunningServer, db: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = await connect(s, db);
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export async function sql<R extends pg.QueryResultRow = any>(s: RunningServer, db: string, text: string, params: unknown[] = []): Promise<R[]> {
  return withClient(s, db, async (c) => (await c.query<R>(text, params)).rows);
}

/** `-h host -p port -U postgres db` for the command-line tools. */
export const connArgs = (s: RunningServer, db: string) => `-h ${s.host} -p ${s.port} -U postgres ${db}`;

/** Runs pgbench against `db`; resolves with its TPS (NaN when it printed none). With `allowFailure`, a non-zero exit is not an error. */
export function pgbench(s: RunningServer, db: string, extra: string[], allowFailure = false): Promise<{ tps: number; output: string }> {
  const path = requireTool('pgbench', 'postgresql-15');
  return new Promise((resolve, reject) => {
    const child = spawn(path, ['-h', s.host, '-p', String(s.port), '-U', 'postgres', ...extra, db], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('close', (code) => {
      if (code !== 0 && !allowFailure) return reject(new Error(`pgbench ${extra.join(' ')} failed:\n${output}`));
      const m = /tps = ([\d.]+) \((without|excluding)/.exec(output);
      resolve({ tps: m ? Number(m[1]) : NaN, output });
    });
  });
}

/** Runs a bash command line (pipefail); resolves with its wall time in ms. */
export function shell(command: string): Promise<number> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-o', 'pipefail', '-c', command], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => (code === 0 ? resolve(Date.now() - t0) : reject(new Error(`${command} failed:\n${err}`))));
  });
}

export async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 1_800_000, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- rounds and their statistics ----

export function median(xs: number[]): number {
  const s = [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/**
 * Runs `rounds` rounds of every mode, interleaved (round r starts at mode r
 * mod n, so no mode always goes first or follows the same one); resolves with
 * each mode's measurements in round order.
 */
export async function interleaved<M extends string>(rounds: number, modes: readonly M[], measure: (mode: M, round: number) => Promise<number>): Promise<Record<M, number[]>> {
  const out = Object.fromEntries(modes.map((m) => [m, [] as number[]])) as Record<M, number[]>;
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < modes.length; i++) {
      const mode = modes[(r + i) % modes.length]!;
      out[mode].push(await measure(mode, r));
    }
  }
  return out;
}

/** "median (min–max)" of xs, each shown by `show`. */
export function spread(xs: number[], show: (x: number) => string = (x) => x.toFixed(0)): string {
  const ok = xs.filter((x) => Number.isFinite(x));
  if (!ok.length) return 'n/a';
  return `${show(median(ok))} (${show(Math.min(...ok))}–${show(Math.max(...ok))}, n=${ok.length})`;
}

export const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
export const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
/** a / b as "1.23×". */
export const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? `${(a / b).toFixed(2)}×` : 'n/a');

// ---- pgconvey: a desired-state file, apply, and the real `run` ----

export interface FileOptions {
  queue?: string;
  /** tables.include patterns; default every table of public. */
  include?: string[];
  copyParallel?: number;
  /** prepare.schema: copy (default) or check (the tables exist on the target). */
  schema?: 'copy' | 'check';
  /** daemons.ticker.min_interval (e.g. `20ms`); default: the file's default. */
  tickerMinInterval?: string;
}

/** Writes a two-node desired-state file (old_root → new_leaf) and returns its path. */
export function writeDesiredState(source: RunningServer, srcDb: string, target: RunningServer, dstDb: string, o: FileOptions = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'pgconvey-bench-'));
  const file = join(dir, 'bench.yaml');
  const include = (o.include ?? ['public.*']).map((t) => JSON.stringify(t)).join(', ');
  writeFileSync(
    file,
    `version: 1
databases:
  old: "host=${source.host} port=${source.port} user=postgres dbname=${srcDb}"
  new: "host=${target.host} port=${target.port} user=postgres dbname=${dstDb}"
prepare: { schema: ${o.schema ?? 'copy'} }
${daemonsLine(o)}queues:
  ${o.queue ?? 'bench'}:
    nodes:
      old_root: { database: old, type: root }
      new_leaf: { database: new, type: leaf, provider: old_root }
    tables: { include: [${include}] }
`,
  );
  return file;
}

/** The file's top-level `daemons` line (empty when it sets nothing). */
function daemonsLine(o: FileOptions): string {
  const parts = [o.copyParallel ? `copy: { parallel: ${o.copyParallel} }` : '', o.tickerMinInterval ? `ticker: { min_interval: ${o.tickerMinInterval} }` : ''].filter(Boolean);
  return parts.length ? `daemons: { ${parts.join(', ')} }\n` : '';
}

/** Plans `file` against the live databases and applies it, as `pgconvey apply` does; the two times in ms. */
export async function planAndApply(file: string): Promise<{ planMs: number; applyMs: number }> {
  const t0 = Date.now();
  const planned = await planFile(file);
  if (planned.plan.errored) throw new Error(`the plan has errors: ${JSON.stringify(planned.plan.checks)}`);
  const planMs = Date.now() - t0;
  await applyPlan(planned);
  return { planMs, applyMs: Date.now() - t0 - planMs };
}

/** Peak and current RSS of a process from /proc (bytes); 0 when it is gone. */
function procRss(pid: number): { peak: number; now: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
    return { peak: kb('VmHWM'), now: kb('VmRSS') };
  } catch {
    return { peak: 0, now: 0 };
  }
}

export interface RunProcess {
  /** The process id of the `run` process (its CPU: /proc/<pid>/stat). */
  pid: number;
  /** Wall ms since spawn at which the process logged that it runs. */
  readyMs: number;
  /** The peak RSS so far (VmHWM of the process). */
  peakRss(): number;
  /** The last 50,000 characters the process logged (JSON lines). */
  output(): string;
  /** SIGTERM, wait for the exit; resolves with the peak RSS in bytes. */
  stop(): Promise<number>;
}

/**
 * Starts the real `pgconvey run FILE` (node bin/run.js, the compiled dist/)
 * and resolves once it has logged that it runs. BENCH_RUN_NODE_ARGS: extra
 * node flags (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`).
 */
export async function startRun(file: string, extra: string[] = []): Promise<RunProcess> {
  if (!existsSync('dist/commands/run.js')) throw new Error('dist/ is missing: npm run build first (the bench runs the compiled `pgconvey run`)');
  if (statSync('dist/commands/run.js').mtimeMs < statSync('src/commands/run.ts').mtimeMs) log('warning: dist/ looks older than src/; npm run build');
  const t0 = Date.now();
  const child: ChildProcess = spawn(process.execPath, [...(process.env.BENCH_RUN_NODE_ARGS ?? '').split(' ').filter(Boolean), 'bin/run.js', 'run', file, '--log-format', 'json', '--log-level', 'info', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let peak = 0;
  const sample = setInterval(() => (peak = Math.max(peak, procRss(child.pid!).peak)), 200);
  let ready = false;
  const take = (d: Buffer) => {
    output = (output + d.toString()).slice(-50_000);
    ready ||= /"running"|\brunning\b/.test(output);
  };
  child.stdout!.on('data', take);
  child.stderr!.on('data', take);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let gone = false;
  void exited.then(() => {
    gone = true;
    clearInterval(sample);
  });
  // `run` logs 'running' (info) once it has loaded the file, just before it starts its daemons.
  await new Promise<void>((resolve, reject) => {
    const check = setInterval(() => {
      if (ready) {
        clearInterval(check);
        resolve();
      } else if (gone) {
        clearInterval(check);
        reject(new Error(`pgconvey run exited at start:\n${output}`));
      }
    }, 5);
  });
  return {
    pid: child.pid!,
    readyMs: Date.now() - t0,
    output: () => output,
    peakRss: () => Math.max(peak, procRss(child.pid!).peak),
    async stop() {
      peak = Math.max(peak, procRss(child.pid!).peak);
      if (!gone) child.kill('SIGTERM');
      const code = await exited;
      if (code !== 0 && code !== null) throw new Error(`pgconvey run exited ${code}:\n${output}`);
      if (/"level":"error"/.test(output)) log(`pgconvey run logged errors:\n${output.slice(-2000)}`);
      return peak;
    },
  };
}

/** Forces a tick on the provider and waits until the subscriber has applied it. */
export async function pgconveyCaughtUp(source: RunningServer, srcDb: string, target: RunningServer, dstDb: string, queue = 'bench', timeoutMs?: number): Promise<void> {
  const tick = await withClient(source, srcDb, async (c) => BigInt((await c.query('SELECT pgconvey.force_tick($1) AS t', [queue])).rows[0].t));
  await waitUntil(
    'pgconvey to catch up',
    async () => {
      const rows = await sql(target, dstDb, 'SELECT completed_tick FROM pgconvey.subscription WHERE queue_name = $1', [queue]);
      return rows.length > 0 && rows[0].completed_tick !== null && BigInt(rows[0].completed_tick) >= tick;
    },
    timeoutMs,
  );
}

/** Every table of the subscriber copied and merged ('ok'). */
export async function pgconveyAllCopied(target: RunningServer, dstDb: string): Promise<boolean> {
  const rows = await sql(target, dstDb, "SELECT count(*) FILTER (WHERE state <> 'ok') AS n, count(*) AS total FROM pgconvey.subscriber_table").catch(() => [{ n: 1, total: 0 }]);
  return Number(rows[0].n) === 0 && Number(rows[0].total) > 0;
}

// ---- native logical replication ----

/** CREATE SUBSCRIPTION on the target for `publication` of the source. */
export async function createSubscription(source: RunningServer, srcDb: string, target: RunningServer, dstDb: string, name: string, publication: string, options = 'copy_data = true'): Promise<void> {
  await sql(target, dstDb, `CREATE SUBSCRIPTION ${name} CONNECTION 'host=${source.host} port=${source.port} user=postgres dbname=${srcDb}' PUBLICATION ${publication} WITH (${options})`);
}

/** Every table of the target's subscriptions synchronised ('r'). */
export async function nativeAllSynced(target: RunningServer, dstDb: string): Promise<boolean> {
  const rows = await sql(target, dstDb, "SELECT count(*) FILTER (WHERE srsubstate <> 'r') AS n, count(*) AS total FROM pg_subscription_rel");
  return Number(rows[0].n) === 0 && Number(rows[0].total) > 0;
}

/** Waits until the slot `slot` has confirmed the source's current WAL position (everything written so far is applied). */
export async function nativeCaughtUp(source: RunningServer, srcDb: string, slot: string, timeoutMs?: number): Promise<void> {
  const lsn = (await sql(source, srcDb, 'SELECT pg_current_wal_lsn()::text AS l'))[0].l as string;
  await waitUntil(
    'native logical replication to catch up',
    async () => {
      const rows = await sql(source, srcDb, 'SELECT confirmed_flush_lsn >= $1::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = $2', [lsn, slot]);
      return rows[0]?.ok === true;
    },
    timeoutMs,
  );
}

/** ALTER SUBSCRIPTION … ENABLE/DISABLE; on disable, waits until its apply worker is gone (the slot inactive). */
export async function setSubscription(source: RunningServer, srcDb: string, target: RunningServer, dstDb: string, name: string, on: boolean): Promise<void> {
  await sql(target, dstDb, `ALTER SUBSCRIPTION ${name} ${on ? 'ENABLE' : 'DISABLE'}`);
  if (!on) await waitUntil('the subscription to stop', async () => (await sql(source, srcDb, 'SELECT active FROM pg_replication_slots WHERE slot_name = $1', [name]))[0]?.active === false, 60_000, 20);
}

/** `pg_dump --schema-only` of the source piped into the target (psql, stop on error); the tables' DDL without data. */
export function copySchema(source: RunningServer, srcDb: string, target: RunningServer, dstDb: string, tableArgs = ''): Promise<number> {
  const [psql, pgDump] = [requireTool('psql', 'postgresql-client-15'), requireTool('pg_dump', 'postgresql-client-15')];
  return shell(`${pgDump} --schema-only --no-publications --no-subscriptions ${tableArgs} ${connArgs(source, srcDb)} | ${psql} -q -v ON_ERROR_STOP=1 ${connArgs(target, dstDb)}`);
}
