/**
 * Many small tables (schema-per-tenant style), at durable production
 * settings (bench/pg.ts): from an empty target database to every table
 * replicating, pgconvey against a native subscription of the same tables, in
 * interleaved rounds, a fresh target database each:
 *
 *   pgconvey — plan (catalogs read, schema copy tried), apply (engine, capture on every table, tables by pg_dump -s),
 *              then the real `pgconvey run` until every table is copied and merged ('ok');
 *   native   — `pg_dump -s | psql` of the same schemas, CREATE SUBSCRIPTION (copy_data), until every table is 'r'.
 *
 * Both copy --jobs tables at once (pgconvey: daemons.copy.parallel; native:
 * max_sync_workers_per_subscription); the default 2 is each tool's own default.
 *
 * Usage: npm run bench:tables [-- --tables 2000 --rows 200 --rounds 3 --jobs 2]
 *        npm run bench:tables -- --quick
 * Needs pg_dump and psql 15 (Debian: postgresql-client-15). Appends to docs/benchmarks.md.
 */
import { parseArgs } from 'node:util';
import {
  copySchema,
  createSubscription,
  interleaved,
  log,
  median,
  mib,
  nativeAllSynced,
  pgconveyAllCopied,
  planAndApply,
  ratio,
  secs,
  spread,
  sql,
  startBenchServers,
  startRun,
  waitUntil,
  writeDesiredState,
} from './pg.js';
import { commandLine, header, mdTable, publish, requireTool, runMain } from './report.js';

const { values: args } = parseArgs({
  options: {
    tables: { type: 'string', default: '2000' },
    rows: { type: 'string', default: '200' },
    'per-schema': { type: 'string', default: '20' },
    rounds: { type: 'string', default: '3' },
    jobs: { type: 'string', default: '2' },
    source: { type: 'string', default: '12' },
    target: { type: 'string', default: '17' },
    quick: { type: 'boolean', default: false },
  },
});
const QUICK = args.quick!;
const TABLES = QUICK ? 40 : Number(args.tables);
const ROWS = QUICK ? 20 : Number(args.rows);
const PER_SCHEMA = Number(args['per-schema']);
const ROUNDS = QUICK ? 1 : Number(args.rounds);
const JOBS = Number(args.jobs);
const SRC = 'bench';

async function main(): Promise<void> {
  requireTool('psql', 'postgresql-client-15');
  requireTool('pg_dump', 'postgresql-client-15');
  const started = Date.now();
  const { source, target } = await startBenchServers(Number(args.source), Number(args.target), {
    target: { max_logical_replication_workers: JOBS + 4, max_sync_workers_per_subscription: JOBS, max_worker_processes: JOBS + 12 },
  });
  try {
    const schemas = Math.ceil(TABLES / PER_SCHEMA);
    log(`creating ${TABLES} tables of ${ROWS} rows in ${schemas} schemas on the source`);
    await sql(source, 'postgres', `CREATE DATABASE ${SRC}`);
    await sql(
      source,
      SRC,
      `DO $$ BEGIN
         FOR i IN 0..${TABLES - 1} LOOP
           IF i % ${PER_SCHEMA} = 0 THEN EXECUTE format('CREATE SCHEMA tenant_%s', i / ${PER_SCHEMA}); END IF;
           EXECUTE format('CREATE TABLE tenant_%s.t_%s (id int PRIMARY KEY, account int NOT NULL, name text, amount numeric(12,2), created timestamptz NOT NULL DEFAULT now())', i / ${PER_SCHEMA}, i);
           EXECUTE format('INSERT INTO tenant_%s.t_%s (id, account, name, amount) SELECT g, g %% 17, md5(g::text), g * 1.25 FROM generate_series(1, ${ROWS}) g', i / ${PER_SCHEMA}, i);
         END LOOP;
       END $$`,
    );
    await sql(source, SRC, 'VACUUM ANALYZE');
    const names = (await sql(source, SRC, "SELECT format('%I.%I', schemaname, tablename) AS n FROM pg_tables WHERE schemaname LIKE 'tenant\\_%' ORDER BY 1")).map((r) => r.n as string);
    await sql(source, SRC, `CREATE PUBLICATION pub_tenants FOR TABLE ${names.join(', ')}`);

    const plan: number[] = [];
    const apply: number[] = [];
    const rss: number[] = [];
    const schemaMs: number[] = [];
    let n = 0;
    log(`${ROUNDS} interleaved rounds of pgconvey and native`);
    const total = await interleaved(ROUNDS, ['pgconvey', 'native'] as const, async (method, round) => {
      const db = `t${++n}`;
      await sql(target, 'postgres', `CREATE DATABASE ${db}`);
      await Promise.all([sql(source, SRC, 'CHECKPOINT'), sql(target, 'postgres', 'CHECKPOINT')]);
      const t0 = Date.now();
      let ms: number;
      if (method === 'pgconvey') {
        const queue = `q${n}`;
        const file = writeDesiredState(source, SRC, target, db, { queue, include: ['tenant_*.*'], copyParallel: JOBS });
        const times = await planAndApply(file);
        plan.push(times.planMs);
        apply.push(times.applyMs);
        const run = await startRun(file);
        await waitUntil('pgconvey to copy every table', () => pgconveyAllCopied(target, db), 7_200_000, 200);
        ms = Date.now() - t0;
        rss.push(await run.stop());
        log(`  round ${round + 1} pgconvey: ${secs(ms)} (plan ${secs(times.planMs)}, apply ${secs(times.applyMs)}, run peak RSS ${mib(rss.at(-1)!)})`);
        await sql(source, SRC, 'SELECT pgconvey.drop_queue($1)', [queue]);
      } else {
        schemaMs.push(await copySchema(source, SRC, target, db, "-n 'tenant_*'"));
        await createSubscription(source, SRC, target, db, `sub_${db}`, 'pub_tenants');
        await waitUntil('the initial sync', () => nativeAllSynced(target, db), 7_200_000, 200);
        ms = Date.now() - t0;
        log(`  round ${round + 1} native: ${secs(ms)} (schema ${secs(schemaMs.at(-1)!)})`);
        await sql(target, db, `DROP SUBSCRIPTION sub_${db}`);
      }
      await sql(target, 'postgres', `DROP DATABASE ${db}`);
      return ms;
    });

    const lines = [
      ...(await header(`${TABLES} small tables: empty target → replicating`, commandLine('bench:tables'), started, [['source', source], ['target', target]], QUICK)),
      `Data: ${TABLES} tables × ${ROWS} rows in ${schemas} schemas of ${PER_SCHEMA} (int primary key, 5 columns). ${JOBS} tables copied at once by each tool. Each figure: median (min–max, n rounds); rounds interleaved, a fresh target database each.`,
      '',
      ...mdTable(
        ['measure', 'pgconvey', 'native logical replication', 'pgconvey speed vs native'],
        [
          ['empty target → every table replicating', spread(total.pgconvey, secs), spread(total.native, secs), `**${ratio(median(total.native), median(total.pgconvey))}**`],
          ['of which: plan (catalogs, schema-copy dry run)', spread(plan, secs), '—', '—'],
          ['of which: apply (engine, capture, schema)', spread(apply, secs), `schema by \`pg_dump -s \\| psql\`: ${spread(schemaMs, secs)}`, '—'],
          ['per table', secs(median(total.pgconvey) / TABLES).replace(' s', '') + ' s', secs(median(total.native) / TABLES).replace(' s', '') + ' s', '—'],
          ['peak RSS of `pgconvey run`', spread(rss, mib), '—', '—'],
        ],
      ),
      '',
    ];
    publish(lines.join('\n'), QUICK);
  } finally {
    await Promise.all([source.stop(), target.stop()]);
  }
}

runMain(main);
