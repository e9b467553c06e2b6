/**
 * Microbenchmark of a copy's stream by COPY format (development aid, no
 * report): pgbench_accounts from the source into an empty table on the
 * target through copy-stream.ts, in text and in binary, alternated, each with
 * the wall time and the CPU time both backends used (from /proc: both
 * servers are local) — CPU is the guide on a loaded machine. Then the
 * primary key built after the load at a few maintenance_work_mem settings,
 * 1 to 4 parallel key-range streams (binary), and a load into the table
 * with its key kept (maintained row by row).
 *
 * Usage: tsx bench/copy-format-micro.ts [--rows 1000000] [--rounds 3] [--source 12] [--target 17]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type pg from 'pg';
import { forwardCopy } from '../src/engine/copy-stream.js';
import { connect, log, pgbench, sql, startBenchServers } from './pg.js';
import { runMain } from './report.js';

const { values: args } = parseArgs({
  options: { rows: { type: 'string', default: '1000000' }, rounds: { type: 'string', default: '3' }, source: { type: 'string', default: '12' }, target: { type: 'string', default: '17' } },
});

/** User+system CPU (ms) of a backend, from /proc. */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}
const pidOf = async (c: pg.Client) => (await c.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]!.p;

async function main(): Promise<void> {
  const { source, target } = await startBenchServers(Number(args.source), Number(args.target), {});
  try {
    await sql(source, 'postgres', 'CREATE DATABASE bench');
    await pgbench(source, 'bench', ['-i', '-s', String(Math.max(1, Math.round(Number(args.rows) / 100_000))), '-q']);
    await sql(target, 'postgres', 'CREATE DATABASE t');
    await sql(target, 't', 'CREATE TABLE acc (aid int NOT NULL, bid int, abalance int, filler char(84))');
    const s = await connect(source, 'bench');
    const t = await connect(target, 't');
    const [sp, tp] = [await pidOf(s), await pidOf(t)];
    const cols = 'aid, bid, abalance, filler';
    const run = async (name: string, format: string, pre = '') => {
      await t.query('TRUNCATE acc');
      if (pre) await t.query(pre);
      await t.query('CHECKPOINT');
      const [c0s, c0t, n0] = [cpuMs(sp), cpuMs(tp), process.cpuUsage()];
      const w0 = Date.now();
      await t.query('BEGIN');
      await forwardCopy(s, t, `COPY (SELECT ${cols} FROM pgbench_accounts) TO STDOUT${format}`, `COPY acc (${cols}) FROM STDIN${format}`, { rows: 0, bytes: 0 }, { binary: format !== '' });
      await t.query('COMMIT');
      const wall = Date.now() - w0;
      const n = process.cpuUsage(n0);
      log(`${name.padEnd(22)} wall ${wall} ms; CPU source backend ${cpuMs(sp) - c0s} ms, target backend ${cpuMs(tp) - c0t} ms, node ${((n.user + n.system) / 1000).toFixed(0)} ms`);
    };
    for (let r = 0; r < Number(args.rounds); r++) {
      await t.query('ALTER TABLE acc DROP CONSTRAINT IF EXISTS acc_pkey');
      await run('text', '');
      await run('binary', ' (FORMAT binary)');
    }
    for (let r = 0; r < Number(args.rounds); r++) {
      for (const mwm of ['64MB', '256MB', '1GB']) {
        await t.query('ALTER TABLE acc DROP CONSTRAINT IF EXISTS acc_pkey');
        await t.query(`SET maintenance_work_mem = '${mwm}'`);
        await t.query('SET max_parallel_maintenance_workers = 0');
        const c0 = cpuMs(tp);
        const w0 = Date.now();
        await t.query('ALTER TABLE acc ADD CONSTRAINT acc_pkey PRIMARY KEY (aid)');
        log(`primary key build, maintenance_work_mem ${mwm}: wall ${Date.now() - w0} ms, CPU ${cpuMs(tp) - c0} ms`);
      }
      await t.query('RESET maintenance_work_mem');
    }
    // Parallel key ranges (binary), n streams of n sessions on each side, as a split copy's (each range its own transaction).
    const total = Number((await s.query('SELECT max(aid)::int AS n FROM pgbench_accounts')).rows[0].n);
    await t.query('ALTER TABLE acc DROP CONSTRAINT IF EXISTS acc_pkey');
    for (let r = 0; r < Number(args.rounds); r++) {
      for (const n of [1, 2, 3, 4]) {
        await t.query('TRUNCATE acc');
        await t.query('CHECKPOINT');
        const pairs = await Promise.all(Array.from({ length: n }, async () => [await connect(source, 'bench'), await connect(target, 't')] as const));
        const pids = await Promise.all(pairs.flatMap(([a, b]) => [pidOf(a), pidOf(b)]));
        const c0 = pids.map(cpuMs);
        const w0 = Date.now();
        await Promise.all(
          pairs.map(async ([a, b], i) => {
            const lo = Math.floor((total * i) / n);
            const hi = Math.floor((total * (i + 1)) / n);
            await b.query('BEGIN');
            await forwardCopy(a, b, `COPY (SELECT ${cols} FROM pgbench_accounts WHERE aid > ${lo} AND aid <= ${hi}) TO STDOUT (FORMAT binary)`, `COPY acc (${cols}) FROM STDIN (FORMAT binary)`, { rows: 0, bytes: 0 }, { binary: true });
            await b.query('COMMIT');
          }),
        );
        const wall = Date.now() - w0;
        const cpu = pids.reduce((sum, p, i) => sum + cpuMs(p) - c0[i]!, 0);
        log(`${n} range stream(s), binary: wall ${wall} ms; CPU of the ${2 * n} backends ${cpu} ms`);
        await Promise.all(pairs.flatMap(([a, b]) => [a.end(), b.end()]));
      }
    }
    await t.query('TRUNCATE acc');
    await t.query('ALTER TABLE acc ADD CONSTRAINT acc_pkey PRIMARY KEY (aid)');
    // The key kept during the load (acc_pkey exists now): maintained row by row.
    for (let r = 0; r < Number(args.rounds); r++) await run('binary, key kept', ' (FORMAT binary)');
    await s.end();
    await t.end();
  } finally {
    await Promise.all([source.stop(), target.stop()]);
  }
}

runMain(main);
