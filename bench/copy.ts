/**
 * Initial-copy benchmark: pgconvey's copy of pgbench_accounts from the old
 * server to the new one, beside `pg_dump --data-only | psql` and a plain
 * `COPY TO | COPY FROM` pipe of the same table in the same run; then several
 * tables copied in parallel; and the worker's peak memory while copying.
 *
 * Usage: npm run bench:copy [-- --scale 20 --tables 4 --source 12 --target 17]
 * Needs pg_dump and psql (Debian: apt-get install postgresql-client-15; pg_dump
 * 15 reads servers up to 15, so keep the source at 15 or older).
 */
import { execFileSync, spawn } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import * as engine from '../src/engine/index.js';
import { startServer, type RunningServer } from '../src/embedded/index.js';
import { gitCommit, publish, requireTool, runMain } from './report.js';

const { values: args } = parseArgs({
  options: {
    scale: { type: 'string', default: '20' },
    tables: { type: 'string', default: '4' },
    source: { type: 'string', default: '12' },
    target: { type: 'string', default: '17' },
  },
});
const SCALE = Number(args.scale);
const TABLES = Number(args.tables);
const log = (msg: string) => process.stdout.write(`[bench] ${msg}\n`);


const client = async (s: RunningServer, db: string) => {
  const c = new pg.Client({ host: s.host, port: s.port, user: 'postgres', database: db });
  await c.connect();
  return c;
};

async function sql(s: RunningServer, db: string, text: string): Promise<pg.QueryResult> {
  const c = await client(s, db);
  try {
    return await c.query(text);
  } finally {
    await c.end();
  }
}

function shell(command: string): Promise<number> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-o', 'pipefail', '-c', command], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => (code === 0 ? resolve(Date.now() - t0) : reject(new Error(`${command} failed:\n${err}`))));
  });
}


async function main(): Promise<void> {
  const [psql, pgDump] = [requireTool('psql', 'postgresql-client-15'), requireTool('pg_dump', 'postgresql-client-15')];
  const started = Date.now();
  const [source, target] = await Promise.all([startServer({ major: Number(args.source) }), startServer({ major: Number(args.target) })]);
  const conn = (s: RunningServer, db: string) => `-h ${s.host} -p ${s.port} -U postgres ${db}`;
  try {
    log(`pgbench -i -s ${SCALE} on the source (${SCALE * 100000} accounts), and ${TABLES} copies of it for the parallel run`);
    await sql(source, 'postgres', 'CREATE DATABASE bench');
    execFileSync('pgbench', ['-h', source.host, '-p', String(source.port), '-U', 'postgres', '-i', '-s', String(SCALE), '-q', 'bench'], { stdio: 'ignore' });
    for (let i = 1; i <= TABLES; i++) await sql(source, 'bench', `CREATE TABLE acc_${i} (LIKE pgbench_accounts INCLUDING ALL); INSERT INTO acc_${i} SELECT * FROM pgbench_accounts WHERE aid % ${TABLES} = ${i - 1}`);
    await sql(source, 'bench', 'VACUUM ANALYZE');
    const bytes = Number((await sql(source, 'bench', "SELECT pg_relation_size('pgbench_accounts') AS b")).rows[0].b);
    const rows = SCALE * 100000;
    const schema = `CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int, abalance int, filler char(84));
      ${Array.from({ length: TABLES }, (_, i) => `CREATE TABLE acc_${i + 1} (aid int PRIMARY KEY, bid int, abalance int, filler char(84));`).join('\n')}`;
    for (const db of ['dump', 'pipe', 'pgc']) {
      await sql(target, 'postgres', `CREATE DATABASE ${db}`);
      await sql(target, db, schema);
    }

    log('baseline: pg_dump --data-only | psql');
    const dumpMs = await shell(`${pgDump} --data-only -t pgbench_accounts ${conn(source, 'bench')} | ${psql} -q -v ON_ERROR_STOP=1 ${conn(target, 'dump')}`);
    log(`  ${(dumpMs / 1000).toFixed(2)} s`);
    log('baseline: COPY TO STDOUT | COPY FROM STDIN through psql');
    const pipeMs = await shell(`${psql} -c "COPY pgbench_accounts TO STDOUT" ${conn(source, 'bench')} | ${psql} -c "COPY pgbench_accounts FROM STDIN" ${conn(target, 'pipe')}`);
    log(`  ${(pipeMs / 1000).toFixed(2)} s`);

    log('pgconvey: copy of the same table');
    const prov = await client(source, 'bench');
    const sub = await client(target, 'pgc');
    await engine.installEngine(prov);
    await engine.installEngine(sub);
    await engine.createQueue(prov, 'bench');
    for (const t of ['pgbench_accounts', ...Array.from({ length: TABLES }, (_, i) => `acc_${i + 1}`)]) await engine.addTable(prov, 'bench', 'public', t);
    await engine.subscribe(prov, sub, 'bench', 'target');
    await engine.addSubscriberTable(sub, 'bench', 'target', 'public', 'pgbench_accounts', 'pending');
    let peakRss = 0;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);
    const rssBefore = process.memoryUsage().rss;
    const one = await engine.copyTable(() => client(source, 'bench'), () => client(target, 'pgc'), { queue: 'bench', consumer: 'target', schema: 'public', table: 'pgbench_accounts' });
    log(`  ${(one.durationMs / 1000).toFixed(2)} s, ${one.rows} rows, ${(one.bytes / 1e6).toFixed(0)} MB of COPY text`);

    log(`pgconvey: ${TABLES} tables in parallel (parallel = ${Math.min(TABLES, 4)}) against the pipe, one table after another`);
    for (let i = 1; i <= TABLES; i++) await engine.addSubscriberTable(sub, 'bench', 'target', 'public', `acc_${i}`, 'pending');
    let t0 = Date.now();
    await engine.copyPendingTables(() => client(source, 'bench'), () => client(target, 'pgc'), 'bench', 'target', { parallel: Math.min(TABLES, 4) });
    const parallelMs = Date.now() - t0;
    clearInterval(sampler);
    t0 = Date.now();
    for (let i = 1; i <= TABLES; i++) await shell(`${psql} -c "COPY acc_${i} TO STDOUT" ${conn(source, 'bench')} | ${psql} -c "COPY acc_${i} FROM STDIN" ${conn(target, 'pipe')}`);
    const serialPipeMs = Date.now() - t0;
    log(`  pgconvey ${(parallelMs / 1000).toFixed(2)} s, pipe one after another ${(serialPipeMs / 1000).toFixed(2)} s`);
    await prov.end();
    await sub.end();

    const rate = (ms: number) => `${(bytes / 1e6 / (ms / 1000)).toFixed(0)} MB/s, ${Math.round(rows / (ms / 1000)).toLocaleString('en-US')} rows/s`;
    const report = [
      `### Initial copy — ${new Date().toISOString().slice(0, 10)}`,
      '',
      `Command: \`npm run bench:copy -- --scale ${SCALE} --tables ${TABLES}\` at commit ${gitCommit()} (took ${Math.round((Date.now() - started) / 1000)} s).`,
      `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB; PostgreSQL ${source.version} → ${target.version}, both local (fsync off); pg_dump/psql ${/\d+\.\d+/.exec(execFileSync(pgDump, ['--version'], { encoding: 'utf8' }))?.[0] ?? '?'}.`,
      `Table: pgbench_accounts, ${rows.toLocaleString('en-US')} rows, ${(bytes / 1e6).toFixed(0)} MB on disk, primary key on the target.`,
      '',
      '| copy | time | throughput (table size / time) |',
      '| --- | --- | --- |',
      `| \`pg_dump --data-only \\| psql\` | ${(dumpMs / 1000).toFixed(2)} s | ${rate(dumpMs)} |`,
      `| \`COPY TO \\| COPY FROM\` through psql | ${(pipeMs / 1000).toFixed(2)} s | ${rate(pipeMs)} |`,
      `| pgconvey copyTable (snapshot, pin, one transaction) | ${(one.durationMs / 1000).toFixed(2)} s | ${rate(one.durationMs)} (${((dumpMs / one.durationMs) * 100).toFixed(0)}% of pg_dump's, ${((pipeMs / one.durationMs) * 100).toFixed(0)}% of the pipe's) |`,
      `| ${TABLES} tables of ${(rows / TABLES).toLocaleString('en-US')} rows: pgconvey in parallel vs the pipe one after another | ${(parallelMs / 1000).toFixed(2)} s vs ${(serialPipeMs / 1000).toFixed(2)} s | ${(serialPipeMs / parallelMs).toFixed(2)}× |`,
      '',
      `Peak memory (RSS) of the copying process: ${(peakRss / 2 ** 20).toFixed(0)} MiB (${(rssBefore / 2 ** 20).toFixed(0)} MiB before the copy) — rows stream through; nothing holds a table.`,
      '',
    ].join('\n');
    publish(report);
  } finally {
    await Promise.all([source.stop(), target.stop()]);
  }
}

runMain(main);
