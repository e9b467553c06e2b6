/**
 * Microbenchmark of the copy's stream alone (development aid, no report):
 * COPY of pgbench_accounts from the source into an empty table on the
 * target, through pg-copy-streams (parse + re-frame every row) and through
 * copy-stream.ts (forward the provider's frames), alternated, each with the
 * Node process's CPU time (process.cpuUsage) and the wall time.
 *
 * Usage: tsx bench/copy-stream-micro.ts [--rows 1000000] [--rounds 3]
 */
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { forwardCopy } from '../src/engine/copy-stream.js';
import { connect, log, pgbench, sql, startBenchServers } from './pg.js';
import { runMain } from './report.js';

const { values: args } = parseArgs({ options: { rows: { type: 'string', default: '1000000' }, rounds: { type: 'string', default: '3' } } });

async function main(): Promise<void> {
  const { source, target } = await startBenchServers(12, 17, {});
  try {
    await sql(source, 'postgres', 'CREATE DATABASE bench');
    await pgbench(source, 'bench', ['-i', '-s', String(Math.max(1, Math.round(Number(args.rows) / 100_000))), '-q']);
    await sql(target, 'postgres', 'CREATE DATABASE t');
    await sql(target, 't', 'CREATE TABLE acc (aid int NOT NULL, bid int, abalance int, filler char(84))');
    const s = await connect(source, 'bench');
    const t = await connect(target, 't');
    const out = 'COPY (SELECT aid, bid, abalance, filler FROM pgbench_accounts) TO STDOUT';
    const into = 'COPY acc (aid, bid, abalance, filler) FROM STDIN';
    const modes = {
      'pg-copy-streams': () => pipeline(s.query(copyTo(out)), t.query(copyFrom(into))),
      forward: () => forwardCopy(s, t, out, into, { rows: 0, bytes: 0 }),
    };
    for (let r = 0; r < Number(args.rounds); r++) {
      for (const [name, run] of Object.entries(modes)) {
        await t.query('TRUNCATE acc');
        await t.query('CHECKPOINT');
        const c0 = process.cpuUsage();
        const w0 = Date.now();
        await t.query('BEGIN');
        await run();
        await t.query('COMMIT');
        const c = process.cpuUsage(c0);
        const n = (await t.query('SELECT count(*)::int AS n FROM acc')).rows[0].n;
        log(`${name.padEnd(16)} wall ${Date.now() - w0} ms, node CPU ${((c.user + c.system) / 1000).toFixed(0)} ms (user ${(c.user / 1000).toFixed(0)}, sys ${(c.system / 1000).toFixed(0)}), rows ${n}`);
      }
    }
    // The key rebuilt after the load, at the server's maintenance_work_mem and at 256MB (with parallel workers as the server allows).
    for (let r = 0; r < Number(args.rounds); r++) {
      for (const mwm of ['64MB', '256MB']) {
        await t.query('ALTER TABLE acc DROP CONSTRAINT IF EXISTS acc_pkey');
        await t.query(`SET maintenance_work_mem = '${mwm}'`);
        const w0 = Date.now();
        await t.query('ALTER TABLE acc ADD CONSTRAINT acc_pkey PRIMARY KEY (aid)');
        log(`primary key build, maintenance_work_mem ${mwm}: ${Date.now() - w0} ms`);
      }
    }
    await s.end();
    await t.end();
  } finally {
    await Promise.all([source.stop(), target.stop()]);
  }
}

runMain(main);
