/**
 * Apply-side CPU per row change in steady state: pgbench -N at a fixed rate
 * (-R), and the CPU time (utime + stime from /proc/<pid>/stat; both servers
 * and every process are local) of each process of the apply side during the
 * round, divided by the row changes the round wrote (2 per -N transaction):
 *   pgconvey — the ticker's and the worker's Node processes (`pgconvey run
 *              --node old_root` / `--node new_leaf`), the ticker's backend,
 *              the worker's provider backend, its subscriber backend (and the
 *              copy daemon's idle backend), found by application_name;
 *   native   — the walsender on the source and the logical replication
 *              worker(s) on the target;
 * and the whole machine's busy CPU per row change (/proc/stat: pgbench, its
 * backends with their capture triggers, every server process), beside a
 * plain round (no replication), so the capture's cost is the difference
 * less the apply side's.
 * Every other process of both servers is counted too, by kind (the
 * writers' backends with their capture triggers, checkpointer, walwriter,
 * autovacuum workers, …; the postmaster's children that exited in the round
 * through its cutime + cstime), so the machine's CPU splits into the servers'
 * parts and the rest (pgbench, Node).
 * Rounds interleave the three modes (each replication alone, the other off).
 * A developer's probe: prints, writes nothing to docs/.
 *
 * Usage: npm run build && tsx bench/apply-cpu.ts [-- --scale 5 --rate 500 --seconds 12 --rounds 2 --ticker-min-interval 20ms]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import type { RunningServer } from '../src/embedded/index.js';
import {
  copySchema,
  createSubscription,
  log,
  median,
  nativeAllSynced,
  pgbench,
  pgconveyAllCopied,
  pgconveyCaughtUp,
  planAndApply,
  setSubscription,
  sql,
  startBenchServers,
  startRun,
  waitUntil,
  withClient,
  writeDesiredState,
  type RunProcess,
} from './pg.js';
import { runMain } from './report.js';

const { values: args } = parseArgs({
  options: {
    'ticker-min-interval': { type: 'string' },
    scale: { type: 'string', default: '5' },
    rate: { type: 'string', default: '500' },
    seconds: { type: 'string', default: '12' },
    rounds: { type: 'string', default: '2' },
  },
});
const TABLES = ['pgbench_accounts', 'pgbench_branches', 'pgbench_tellers', 'pgbench_history'];
const SRC = 'bench';
const PGC = 'bench';
const NAT = 'bench_native';
const SUB = 'bench_native';
const TICK_MS = Number(process.env.CLK_TCK_MS ?? 10); // USER_HZ 100

/** utime + stime of a process in ms; 0 when it is gone. */
function cpuMs(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) * TICK_MS;
  } catch {
    return 0;
  }
}

/** The whole machine's busy CPU in ms (every process: /proc/stat's first line less idle and iowait). */
function machineMs(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const busy = f.reduce((a, b) => a + b, 0) - f[3]! - f[4]!;
  return busy * TICK_MS;
}

/** Every child of a server's postmaster: pid → [kind from its process title, CPU ms]; 'exited' is the children gone. */
function serverProcs(postmaster: number): Map<number, [string, number]> {
  const out = new Map<number, [string, number]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const f = readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]!.split(' ');
      if (Number(f[1]) !== postmaster) continue;
      const title = readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ').replace(/^postgres: /, '').trim();
      const known = ['checkpointer', 'background writer', 'walwriter', 'autovacuum launcher', 'autovacuum worker', 'stats collector', 'logical replication launcher', 'archiver'];
      const kind = known.find((k) => title.startsWith(k)) ?? (title.startsWith('walsender') ? 'walsender' : title.startsWith('logical replication') ? 'logical replication worker' : 'client backends');
      out.set(Number(d), [kind, (Number(f[11]) + Number(f[12])) * TICK_MS]);
    } catch {
      /* gone */
    }
  }
  const f = readFileSync(`/proc/${postmaster}/stat`, 'utf8').split(') ')[1]!.split(' ');
  out.set(-1, ['exited children', (Number(f[13]) + Number(f[14])) * TICK_MS]);
  out.set(postmaster, ['postmaster', (Number(f[11]) + Number(f[12])) * TICK_MS]);
  return out;
}

/** CPU ms by kind between two serverProcs snapshots, less the pids measured on their own. */
function byKind(a: Map<number, [string, number]>, b: Map<number, [string, number]>, skip: Set<number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [pid, [kind, ms]] of b) {
    if (skip.has(pid)) continue;
    out.set(kind, (out.get(kind) ?? 0) + ms - (a.get(pid)?.[1] ?? 0));
  }
  return out;
}

/** Backend pids of a server by label (application_name or backend_type), read before the round. */
async function backends(s: RunningServer, db: string, where: string): Promise<Array<{ label: string; pid: number }>> {
  return sql(s, db, `SELECT coalesce(nullif(application_name, ''), backend_type) || ' (' || coalesce(datname, '-') || ')' AS label, pid FROM pg_stat_activity WHERE ${where} AND pid <> pg_backend_pid()`);
}

async function main(): Promise<void> {
  const { source, target } = await startBenchServers(12, 17);
  let ticker: RunProcess | undefined;
  let worker: RunProcess | undefined;
  try {
    await sql(source, 'postgres', `CREATE DATABASE ${SRC}`);
    await pgbench(source, SRC, ['-i', '-s', args.scale!, '-q']);
    await withClient(source, SRC, async (c) => {
      await c.query('ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY');
      await c.query('VACUUM ANALYZE');
    });
    for (const db of [PGC, NAT]) await sql(target, 'postgres', `CREATE DATABASE ${db}`);
    await copySchema(source, SRC, target, NAT);
    await sql(source, SRC, `CREATE PUBLICATION bench_pub FOR TABLE ${TABLES.join(', ')}`);
    await createSubscription(source, SRC, target, NAT, SUB, 'bench_pub');
    await waitUntil('native initial sync', () => nativeAllSynced(target, NAT), 1_800_000, 100);
    await setSubscription(source, SRC, target, NAT, SUB, false);
    const file = writeDesiredState(source, SRC, target, PGC, { tickerMinInterval: args['ticker-min-interval'] });
    await planAndApply(file);
    const setup = await startRun(file);
    await waitUntil('pgconvey to copy every table', () => pgconveyAllCopied(target, PGC), 1_800_000, 100);
    await pgconveyCaughtUp(source, SRC, target, PGC);
    await setup.stop();
    const triggers = await sql<{ rel: string; name: string }>(
      source,
      SRC,
      `SELECT t.tgrelid::regclass::text AS rel, t.tgname AS name FROM pg_trigger t WHERE NOT t.tgisinternal AND t.tgrelid = ANY ($1::regclass[]) AND t.tgname LIKE 'pgconvey%'`,
      [TABLES],
    );
    const setTriggers = (on: boolean) =>
      withClient(source, SRC, async (c) => {
        for (const t of triggers) await c.query(`ALTER TABLE ${t.rel} ${on ? 'ENABLE' : 'DISABLE'} TRIGGER ${JSON.stringify(t.name)}`);
      });

    const results: Record<string, Record<string, number[]>> = { plain: {}, pgconvey: {}, native: {} };
    const tps: Record<string, number[]> = { plain: [], pgconvey: [], native: [] };
    for (let round = 0; round < Number(args.rounds); round++) {
      for (const mode of ['plain', 'pgconvey', 'native'] as const) {
        let procs: Array<{ label: string; pid: number }>;
        if (mode === 'plain') {
          await setTriggers(false);
          procs = [];
        } else if (mode === 'pgconvey') {
          await setTriggers(true);
          ticker = await startRun(file, ['--node', 'old_root']);
          worker = await startRun(file, ['--node', 'new_leaf']);
          await pgconveyCaughtUp(source, SRC, target, PGC);
          await new Promise((r) => setTimeout(r, 500));
          procs = [
            { label: 'node ticker', pid: ticker.pid },
            { label: 'node worker', pid: worker.pid },
            ...(await backends(source, SRC, "application_name LIKE 'pgconvey:%'")).map((b) => ({ ...b, label: `source ${b.label}` })),
            ...(await backends(target, PGC, "application_name LIKE 'pgconvey:%'")).map((b) => ({ ...b, label: `target ${b.label}` })),
          ];
        } else {
          await setTriggers(false);
          await setSubscription(source, SRC, target, NAT, SUB, true);
          await waitUntil('native walsender', async () => (await backends(source, SRC, "backend_type = 'walsender'")).length > 0, 60_000, 50);
          await new Promise((r) => setTimeout(r, 1000));
          procs = [
            ...(await backends(source, SRC, "backend_type = 'walsender'")).map((b) => ({ ...b, label: `source walsender` })),
            ...(await backends(target, 'postgres', "backend_type LIKE 'logical replication%' AND backend_type <> 'logical replication launcher'")).map((b) => ({ ...b, label: `target ${b.label}` })),
          ];
        }
        const ticks = async () => (mode === 'pgconvey' ? Number((await sql(source, SRC, 'SELECT max(tick_id) AS t FROM pgconvey.tick'))[0].t) : 0);
        const ticks0 = await ticks();
        const before = procs.map((p) => cpuMs(p.pid));
        const servers0 = [serverProcs(source.pid), serverProcs(target.pid)];
        const machine0 = machineMs();
        const r = await pgbench(source, SRC, ['-N', '-c', '4', '-j', '2', '-R', args.rate!, '-T', args.seconds!]);
        const after = procs.map((p) => cpuMs(p.pid));
        const machine = machineMs() - machine0;
        const servers1 = [serverProcs(source.pid), serverProcs(target.pid)];
        if (mode === 'pgconvey') (results[mode]!['ticks/s'] ??= []).push(((await ticks()) - ticks0) / Number(args.seconds));
        const rows = r.tps * Number(args.seconds) * 2;
        tps[mode]!.push(r.tps);
        const line: string[] = [];
        let total = 0;
        const secondsTaken = Number(args.seconds);
        procs.forEach((p, i) => {
          (results[mode]![`${p.label} [ms CPU/s]`] ??= []).push((after[i]! - before[i]!) / secondsTaken);
          const us = ((after[i]! - before[i]!) * 1000) / rows;
          total += us;
          (results[mode]![p.label] ??= []).push(us);
          line.push(`${p.label} ${us.toFixed(1)}`);
        });
        (results[mode]!['TOTAL'] ??= []).push(total);
        const skip = new Set(procs.map((p) => p.pid));
        let counted = total;
        ['source', 'target'].forEach((side, i) => {
          for (const [kind, ms] of byKind(servers0[i]!, servers1[i]!, skip)) {
            const us = (ms * 1000) / rows;
            counted += us;
            (results[mode]![`${side} ${kind}`] ??= []).push(us);
          }
        });
        const machineUs = (machine * 1000) / rows;
        (results[mode]!['MACHINE (every process, pgbench and writers included)'] ??= []).push(machineUs);
        (results[mode]!['rest of the machine (pgbench, Node, the OS)'] ??= []).push(machineUs - counted);
        log(`round ${round + 1} ${mode}: ${r.tps.toFixed(0)} tps, load ${loadavg()[0]!.toFixed(2)}; µs CPU per row change: ${line.join(', ')}; total ${total.toFixed(1)}; machine ${machineUs.toFixed(1)}`);
        if (mode === 'pgconvey') {
          await worker!.stop();
          await ticker!.stop();
          worker = ticker = undefined;
        } else if (mode === 'native') {
          await setSubscription(source, SRC, target, NAT, SUB, false);
        }
      }
    }
    for (const mode of ['plain', 'pgconvey', 'native'] as const) {
      log(`${mode}: median ${median(tps[mode]!).toFixed(0)} tps; µs CPU per row change (median of ${args.rounds}):`);
      for (const [label, xs] of Object.entries(results[mode]!)) log(`    ${label.padEnd(40)} ${median(xs).toFixed(1)}  (${xs.map((x) => x.toFixed(1)).join(', ')})`);
    }
  } finally {
    await worker?.stop().catch(() => undefined);
    await ticker?.stop().catch(() => undefined);
    await Promise.all([source.stop(), target.stop()]);
  }
}

runMain(main);
