/**
 * Initial-copy benchmark, at durable production settings (bench/pg.ts): from
 * an empty target database to the data copied, for one large table and for
 * several tables of the same total size, in interleaved rounds:
 *
 *   pgconvey   — `apply` (engine, capture, tables by pg_dump -s) + the real `pgconvey run` until every table is copied and merged;
 *   pg_dump    — `pg_dump -t … | psql` (schema, data, then the primary key), one stream;
 *   pg_dump -j — `pg_dump -Fd -j N` + `pg_restore -j N` (several tables only: -j splits by table);
 *   native     — `pg_dump -s | psql` + a subscription's initial sync (copy_data), until every table is 'r'.
 *
 * Every round gets a fresh target database. pgconvey copies N tables at once
 * (daemons.copy.parallel = --jobs), pg_dump/pg_restore take -j N, native
 * gets max_sync_workers_per_subscription = N: the same parallelism for each.
 *
 * Usage: npm run bench:copy [-- --rows 5000000 --tables 8 --rounds 3 --jobs 4]
 *        npm run bench:copy -- --quick
 *        npm run bench:copy -- --rows 1000000 --methods pgconvey   (pg_dump always runs: the base)
 * Needs pg_dump, pg_restore and psql 15 (Debian: postgresql-client-15; pg_dump 15 reads servers up to 15, so keep
 * the source at 15 or older). Appends to docs/benchmarks.md.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  connArgs,
  copySchema,
  createSubscription,
  interleaved,
  log,
  median,
  mib,
  nativeAllSynced,
  pgbench,
  pgconveyAllCopied,
  planAndApply,
  ratio,
  secs,
  shell,
  spread,
  sql,
  startBenchServers,
  startRun,
  waitUntil,
  writeDesiredState,
} from './pg.js';
import { OK_AT_SQL, STEPS, copyTimeline, type Step } from './copy-timeline.js';
import { commandLine, header, mdTable, publish, requireTool, runMain } from './report.js';

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '5000000' },
    tables: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '3' },
    jobs: { type: 'string', default: '4' },
    source: { type: 'string', default: '12' },
    target: { type: 'string', default: '17' },
    quick: { type: 'boolean', default: false },
    /** Only these methods (comma-separated: pgconvey,pg_dump,pg_dump_j,native); pg_dump always runs (the base). */
    methods: { type: 'string', default: '' },
  },
});
const QUICK = args.quick!;
const ROWS = QUICK ? 100_000 : Number(args.rows);
const SCALE = Math.max(1, Math.round(ROWS / 100_000));
const TABLES = Number(args.tables);
const ROUNDS = QUICK ? 1 : Number(args.rounds);
const JOBS = Number(args.jobs);
const SRC = 'bench';

type Method = 'pgconvey' | 'pg_dump' | 'pg_dump_j' | 'native';
const ONLY = new Set(args.methods ? [...args.methods.split(','), 'pg_dump'] : []);
const pick = (ms: Method[]) => (ONLY.size ? ms.filter((m) => ONLY.has(m)) : ms);

async function main(): Promise<void> {
  const psql = requireTool('psql', 'postgresql-client-15');
  const pgDump = requireTool('pg_dump', 'postgresql-client-15');
  const pgRestore = requireTool('pg_restore', 'postgresql-client-15');
  requireTool('pgbench', 'postgresql-15');
  const started = Date.now();
  const { source, target } = await startBenchServers(Number(args.source), Number(args.target), {
    target: { max_logical_replication_workers: JOBS + 4, max_sync_workers_per_subscription: JOBS, max_worker_processes: JOBS + 12 },
  });
  try {
    log(`pgbench -i -s ${SCALE} on the source (${(SCALE * 100_000).toLocaleString('en-US')} accounts), and ${TABLES} tables of ${SCALE * 100_000 / TABLES} rows`);
    await sql(source, 'postgres', `CREATE DATABASE ${SRC}`);
    await pgbench(source, SRC, ['-i', '-s', String(SCALE), '-q']);
    const multi = Array.from({ length: TABLES }, (_, i) => `acc_${i + 1}`);
    for (const [i, t] of multi.entries()) await sql(source, SRC, `CREATE TABLE ${t} (LIKE pgbench_accounts INCLUDING ALL); INSERT INTO ${t} SELECT * FROM pgbench_accounts WHERE aid % ${TABLES} = ${i}`);
    await sql(source, SRC, 'VACUUM ANALYZE');
    await sql(source, SRC, 'CREATE PUBLICATION pub_single FOR TABLE pgbench_accounts');
    await sql(source, SRC, `CREATE PUBLICATION pub_multi FOR TABLE ${multi.join(', ')}`);
    const bytesOf = async (ts: string[]) => Number((await sql(source, SRC, 'SELECT sum(pg_table_size(t::regclass)) AS b FROM unnest($1::text[]) t', [ts]))[0].b);

    const cases = [
      { name: 'single', title: `one table of ${(SCALE * 100_000).toLocaleString('en-US')} rows (pgbench_accounts)`, tables: ['pgbench_accounts'], methods: pick(['pgconvey', 'pg_dump', 'native']) },
      { name: 'multi', title: `${TABLES} tables of ${(SCALE * 100_000 / TABLES).toLocaleString('en-US')} rows each`, tables: multi, methods: pick(['pgconvey', 'pg_dump', 'pg_dump_j', 'native']) },
    ];
    const results: Array<{ title: string; bytes: number; times: Record<Method, number[]>; rss: number[]; setup: number[]; copyMs: number[]; streamMs: number[]; indexMs: number[]; timeline: Array<Partial<Record<Step, number>>> }> = [];
    let n = 0;
    for (const c of cases) {
      const tArgs = c.tables.map((t) => `-t public.${t}`).join(' ');
      const rss: number[] = [];
      const setup: number[] = [];
      const copyMs: number[] = [];
      const streamMs: number[] = [];
      const indexMs: number[] = [];
      const timeline: Array<Partial<Record<Step, number>>> = [];
      log(`${c.title}: ${ROUNDS} interleaved rounds of ${c.methods.join(', ')}`);
      const times = await interleaved(ROUNDS, c.methods, async (method, round) => {
        const db = `t${++n}`;
        await sql(target, 'postgres', `CREATE DATABASE ${db}`);
        await Promise.all([sql(source, SRC, 'CHECKPOINT'), sql(target, 'postgres', 'CHECKPOINT')]);
        const t0 = Date.now();
        if (method === 'pgconvey') {
          const queue = `q${n}`;
          const file = writeDesiredState(source, SRC, target, db, { queue, include: c.tables.map((t) => `public.${t}`), copyParallel: JOBS });
          const pa = await planAndApply(file);
          setup.push(pa.planMs + pa.applyMs);
          const spawnAt = Date.now();
          const run = await startRun(file);
          await waitUntil('pgconvey to copy every table', () => pgconveyAllCopied(target, db), 3_600_000, 50);
          const endAt = Date.now();
          const ms = endAt - t0;
          const okAt = Number((await sql(target, db, OK_AT_SQL))[0].ok);
          rss.push(await run.stop());
          timeline.push(copyTimeline({ t0, spawnAt, endAt, okAt, output: run.output() }));
          // The copies' own time, from the run's 'copied table' log lines (ms each; tables run --jobs at once).
          const copied = run.output().split('\n').filter((l) => l.includes('"copied table"')).map((l) => JSON.parse(l) as { ms?: number; stream_ms?: number; index_ms?: number });
          const longest = copied.reduce<(typeof copied)[number] | undefined>((a, c) => (a === undefined || (c.ms ?? 0) > (a.ms ?? 0) ? c : a), undefined);
          copyMs.push(longest?.ms ?? NaN);
          streamMs.push(longest?.stream_ms ?? NaN);
          indexMs.push(longest?.index_ms ?? NaN);
          await sql(source, SRC, 'SELECT pgconvey.drop_queue($1)', [queue]);
          await sql(target, 'postgres', `DROP DATABASE ${db}`);
          log(`  round ${round + 1} pgconvey: ${secs(ms)} (run peak RSS ${mib(rss.at(-1)!)})`);
          return ms;
        }
        if (method === 'pg_dump') {
          await shell(`${pgDump} ${tArgs} ${connArgs(source, SRC)} | ${psql} -q -v ON_ERROR_STOP=1 ${connArgs(target, db)}`);
        } else if (method === 'pg_dump_j') {
          const dir = join(mkdtempSync(join(tmpdir(), 'pgconvey-bench-dump-')), 'd');
          try {
            await shell(`${pgDump} -Fd -j ${JOBS} -f ${dir} ${tArgs} ${connArgs(source, SRC)} && ${pgRestore} -j ${JOBS} --exit-on-error -h ${target.host} -p ${target.port} -U postgres -d ${db} ${dir}`);
          } finally {
            rmSync(dir, { recursive: true, force: true });
          }
        } else {
          await copySchema(source, SRC, target, db, tArgs);
          await createSubscription(source, SRC, target, db, `sub_${db}`, `pub_${c.name}`);
          await waitUntil('the initial sync', () => nativeAllSynced(target, db), 3_600_000, 50);
        }
        const ms = Date.now() - t0;
        if (method === 'native') await sql(target, db, `DROP SUBSCRIPTION sub_${db}`);
        await sql(target, 'postgres', `DROP DATABASE ${db}`);
        log(`  round ${round + 1} ${method}: ${secs(ms)}`);
        return ms;
      });
      results.push({ title: c.title, bytes: await bytesOf(c.tables), times, rss, setup, copyMs, streamMs, indexMs, timeline });
    }

    const label: Record<Method, string> = {
      pgconvey: `pgconvey: \`apply\` + \`run\` until copied (copy.parallel ${JOBS})`,
      pg_dump: '`pg_dump -t … \\| psql`',
      pg_dump_j: `\`pg_dump -Fd -j ${JOBS}\` + \`pg_restore -j ${JOBS}\``,
      native: `native LR: \`pg_dump -s \\| psql\` + initial sync (${JOBS} sync workers)`,
    };
    const lines = [
      ...(await header('Initial copy', commandLine('bench:copy'), started, [['source', source], ['target', target]], QUICK)),
      'Empty target database → data copied (schema included for every method). Each figure: median (min–max, n rounds); rounds interleaved, a fresh target database each.',
    ];
    for (const r of results) {
      const base = median(r.times.pg_dump);
      const rows = (Object.keys(r.times) as Method[]).map((m) => {
        const med = median(r.times[m]);
        return [label[m], spread(r.times[m], secs), `${(r.bytes / 1e6 / (med / 1000)).toFixed(0)} MB/s`, m === 'pg_dump' ? '1.00×' : ratio(base, med), m === 'pgconvey' && r.times.native ? ratio(median(r.times.native), med) : '—'];
      });
      lines.push('', `**${r.title}**, ${(r.bytes / 1e6).toFixed(0)} MB on the source:`, '', ...mdTable(['method', 'time', 'table size / time', 'speed vs pg_dump \\| psql', 'pgconvey vs native'], rows));
      lines.push('', `pgconvey's time includes plan + apply (engine install, capture triggers, schema by pg_dump -s): ${spread(r.setup, secs)}; the longest table copy itself (from the run's log) ${spread(r.copyMs, secs)}, of which its rows' stream ${spread(r.streamMs, secs)} and its indexes and keys built again ${spread(r.indexMs, secs)}; the rest is the run starting, waiting for ticks and merging. Peak RSS of \`pgconvey run\` while copying: ${spread(r.rss, mib)}.`);
      if (r.timeline.length) {
        lines.push('', "pgconvey's round, step by step (from the run's log and the tables' rows; ms, median (min–max, n rounds)):", '');
        lines.push(...mdTable(['step', 'time'], STEPS.map(([k, label]) => [label, spread(r.timeline.map((t) => t[k] ?? NaN), (x) => `${x.toFixed(0)} ms`)])));
      }
    }
    publish(lines.join('\n') + '\n', QUICK);
  } finally {
    await Promise.all([source.stop(), target.stop()]);
  }
}

runMain(main);
