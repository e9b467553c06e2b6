/**
 * Development probe for the initial copy (not a benchmark: no report): one set
 * of servers, then the given sequence of rounds, printing for each pgconvey
 * round its timeline — plan+apply, the run's start, every log line of the
 * copy daemon and worker with its time since t0, the end seen by the poll.
 *
 * Usage: tsx bench/copy-probe.ts [--rows 1000000] [--tables 8] [--seq pgconvey,pg_dump,pgconvey] [--case single|multi]
 *        PROBE_CPU_PROF=/tmp/dir: the run is started with --cpu-prof into that directory.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { execSync, spawn } from 'node:child_process';

const uptime = () => execSync('uptime').toString().trim().replace(/.*load/, 'load');
import { parseArgs } from 'node:util';
import { connArgs, log, pgbench, pgconveyAllCopied, planAndApply, sql, shell, startBenchServers, startRun, waitUntil, writeDesiredState } from './pg.js';
import { OK_AT_SQL, STEPS, copyTimeline } from './copy-timeline.js';
import { requireTool, runMain } from './report.js';

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    tables: { type: 'string', default: '8' },
    seq: { type: 'string', default: 'pgconvey,pg_dump,pgconvey' },
    case: { type: 'string', default: 'single' },
    jobs: { type: 'string', default: '4' },
    ranges: { type: 'string' },
  },
});

/** User+system CPU (ms) of the `run` process started on `file`, from /proc. */
function cpuOf(file: string): number {
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(file)) continue;
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return (Number(f[11]) + Number(f[12])) * 10;
    } catch {
      // gone
    }
  }
  return NaN;
}

async function main(): Promise<void> {
  const psql = requireTool('psql', 'postgresql-client-15');
  const pgDump = requireTool('pg_dump', 'postgresql-client-15');
  const SCALE = Math.max(1, Math.round(Number(args.rows) / 100_000));
  const TABLES = Number(args.tables);
  const { source, target } = await startBenchServers(12, 17, {});
  try {
    await sql(source, 'postgres', 'CREATE DATABASE bench');
    await pgbench(source, 'bench', ['-i', '-s', String(SCALE), '-q']);
    const multi = Array.from({ length: TABLES }, (_, i) => `acc_${i + 1}`);
    if (args.case === 'multi') for (const [i, t] of multi.entries()) await sql(source, 'bench', `CREATE TABLE ${t} (LIKE pgbench_accounts INCLUDING ALL); INSERT INTO ${t} SELECT * FROM pgbench_accounts WHERE aid % ${TABLES} = ${i}`);
    await sql(source, 'bench', 'VACUUM ANALYZE');
    const tables = args.case === 'multi' ? multi : ['pgbench_accounts'];
    let n = 0;
    for (const method of args.seq!.split(',')) {
      const db = `t${++n}`;
      await sql(target, 'postgres', `CREATE DATABASE ${db}`);
      await Promise.all([sql(source, 'bench', 'CHECKPOINT'), sql(target, 'postgres', 'CHECKPOINT')]);
      const t0 = Date.now();
      if (method === 'pg_dump') {
        await shell(`${pgDump} ${tables.map((t) => `-t public.${t}`).join(' ')} ${connArgs(source, 'bench')} | ${psql} -q -v ON_ERROR_STOP=1 ${connArgs(target, db)}`);
        log(`pg_dump: ${Date.now() - t0} ms`);
        continue;
      }
      const file = writeDesiredState(source, 'bench', target, db, { queue: `q${n}`, include: tables.map((t) => `public.${t}`), copyParallel: Number(args.jobs) });
      const pa = await planAndApply(file);
      const tRun = Date.now();
      const [name, ...envs] = method.split('+');
      const saved = { ...process.env };
      for (const e of envs) {
        const [k, v] = e.split('=');
        process.env[k!] = v ?? '1';
      }
      if (process.env.PROBE_CPU_PROF) {
        // A profiled run of its own: node --cpu-prof, until every table is ok, then SIGTERM (the profile is written at exit).
        const child = spawn(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${process.env.PROBE_CPU_PROF}/${n}-${name}`, 'bin/run.js', 'run', file, '--log-format', 'json'], { stdio: 'ignore', env: process.env });
        process.env = saved;
        await waitUntil('copied', () => pgconveyAllCopied(target, db), 3_600_000, 20);
        log(`${method} (profiled): ${Date.now() - t0} ms`);
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
        await sql(source, 'bench', 'SELECT pgconvey.drop_queue($1)', [`q${n}`]);
        continue;
      }
      const run = await startRun(file);
      process.env = saved;
      const tReady = Date.now();
      await waitUntil('copied', () => pgconveyAllCopied(target, db), 3_600_000, 20);
      const tEnd = Date.now();
      const cpu = cpuOf(file);
      const okAt = Number((await sql(target, db, OK_AT_SQL))[0].ok);
      // The tables' own times on the subscriber: copy began/ended (copier), state since (the worker's merge to ok; now() of its batch).
      const states = await sql(target, db, "SELECT table_name AS t, extract(epoch FROM copy_started_at) * 1000 AS b, extract(epoch FROM copy_finished_at) * 1000 AS e, extract(epoch FROM state_since) * 1000 AS ok FROM pgconvey.subscriber_table ORDER BY copy_started_at");
      await run.stop();
      log(`${method}: ${tEnd - t0} ms; uptime ${uptime()}; plan ${pa.planMs} apply ${pa.applyMs}; run spawn→running ${tReady - tRun} ms; running→all ok ${tEnd - tReady} ms; run CPU ${cpu} ms`);
      for (const line of run.output().split('\n')) {
        try {
          const j = JSON.parse(line) as { time?: string; ts?: string; msg?: string; [k: string]: unknown };
          const at = Date.parse((j.time ?? j.ts) as string);
          process.stdout.write(`  +${String(at - t0).padStart(6)} ms ${line.slice(0, line.includes("copied table") ? 700 : 260)}\n`);
        } catch {
          if (line.trim()) process.stdout.write(`  ? ${line.slice(0, 200)}\n`);
        }
      }
      const steps = copyTimeline({ t0, spawnAt: tRun, endAt: tEnd, okAt, output: run.output() });
      log(`  timeline: ${STEPS.map(([k]) => `${k} ${steps[k]?.toFixed(0) ?? '?'}`).join(', ')} ms`);
      for (const r of states) log(`  ${String(r.t).padEnd(20)} copy began +${Math.round(Number(r.b) - t0)} ms, recorded +${Math.round(Number(r.e) - t0)} ms, ok (worker's batch began) +${Math.round(Number(r.ok) - t0)} ms`);
      await sql(source, 'bench', 'SELECT pgconvey.drop_queue($1)', [`q${n}`]);
    }
  } finally {
    await Promise.all([source.stop(), target.stop()]);
  }
}

runMain(main);
