/**
 * Engine benchmark: pgconvey against native logical replication, in the same
 * run, on the same two local servers (old source → new target).
 *
 *  1. write overhead: pgbench -N TPS on the source without capture, with
 *     pgconvey replicating, and with native logical replication;
 *  2. catch-up: a backlog of pgbench -N transactions built while the apply
 *     side is stopped, then the time to apply it (row changes per second);
 *  3. lag under a steady 500 transactions/s, measured on the subscriber by a
 *     probe row carrying its send time.
 *
 * Usage: npm run bench:engine [-- --scale 20 --seconds 30 --backlog 20000 --source 12 --target 17]
 * Needs pgbench (Debian: apt-get install postgresql-15). Appends to docs/benchmarks.md.
 */
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { createLogger, runTickerDaemon, runWorkerDaemon } from '../src/daemons/index.js';
import * as engine from '../src/engine/index.js';
import { startServer, type RunningServer } from '../src/embedded/index.js';
import { pgbench, waitUntil, withClient } from './pg.js';
import { gitCommit, publish, requireTool, runMain } from './report.js';
import type { ConnectionSpec } from '../src/config/index.js';

const { values: args } = parseArgs({
  options: {
    scale: { type: 'string', default: '20' },
    seconds: { type: 'string', default: '30' },
    backlog: { type: 'string', default: '80000' },
    source: { type: 'string', default: '12' },
    target: { type: 'string', default: '17' },
    rate: { type: 'string', default: '500' },
    'lag-seconds': { type: 'string', default: '20' },
  },
});
const SCALE = Number(args.scale);
const SECONDS = Number(args.seconds);
const BACKLOG_TX_PER_CLIENT = Math.ceil(Number(args.backlog) / 4);
const RATE = Number(args.rate);
const LAG_SECONDS = Number(args['lag-seconds']);
const TABLES = ['pgbench_accounts', 'pgbench_branches', 'pgbench_tellers', 'pgbench_history', 'lag_probe'];

const log = (msg: string) => process.stdout.write(`[bench] ${msg}\n`);
const quiet = createLogger({ level: 'error' });


function pgbenchPath(): string {
  return requireTool('pgbench', 'postgresql-15');
}

function spec(s: RunningServer, dbname: string): ConnectionSpec {
  return { host: s.host, port: s.port, user: 'postgres', dbname };
}

async function initPgbench(s: RunningServer, db: string): Promise<void> {
  await withClient(s, 'postgres', (c) => c.query(`CREATE DATABASE ${db}`));
  await pgbench(s, db, ['-i', '-s', String(SCALE), '-q']);
  await withClient(s, db, async (c) => {
    await c.query('ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY');
    await c.query('CREATE TABLE lag_probe (id bigserial PRIMARY KEY, sent_at timestamptz NOT NULL)');
    await c.query('VACUUM ANALYZE');
  });
}

/** Inserts a probe row every 100 ms until stopped. */
function startProbe(s: RunningServer, db: string): { stop: () => Promise<number> } {
  let running = true;
  let sent = 0;
  const done = withClient(s, db, async (c) => {
    while (running) {
      await c.query('INSERT INTO lag_probe (sent_at) VALUES (clock_timestamp())');
      sent++;
      await new Promise((r) => setTimeout(r, 100));
    }
  });
  return {
    stop: async () => {
      running = false;
      await done;
      return sent;
    },
  };
}

/** Lag of the probe rows received on the subscriber since `fromId`: median, p95, max in ms. */
async function probeLag(target: RunningServer, db: string, fromId: number): Promise<{ median: number; p95: number; max: number; n: number }> {
  return withClient(target, db, async (c) => {
    const { rows } = await c.query(
      `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS median, percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) AS p95, max(ms) AS max, count(*) AS n
         FROM (SELECT extract(epoch FROM received_at - sent_at) * 1000 AS ms FROM lag_probe WHERE id > $1) x`,
      [fromId],
    );
    return { median: Number(rows[0].median), p95: Number(rows[0].p95), max: Number(rows[0].max), n: Number(rows[0].n) };
  });
}

async function maxProbeId(s: RunningServer, db: string): Promise<number> {
  return withClient(s, db, async (c) => Number((await c.query('SELECT coalesce(max(id), 0) AS m FROM lag_probe')).rows[0].m));
}

async function main(): Promise<void> {
  pgbenchPath();
  const started = Date.now();
  log(`starting PostgreSQL ${args.source} (source, wal_level=logical) and ${args.target} (target)`);
  // synchronous_commit on (unlike the test defaults): otherwise WAL reaches a walsender only every
    // wal_writer_delay, which would handicap the native baseline's lag.
    const settings = { synchronous_commit: 'on' };
    const [source, target] = await Promise.all([
      startServer({ major: Number(args.source), logical: true, settings }),
      startServer({ major: Number(args.target), logical: true, settings }),
    ]);
  try {
    log(`pgbench -i -s ${SCALE} on the source and on two target databases`);
    await Promise.all([initPgbench(source, 'bench'), initPgbench(target, 'bench_pgconvey'), initPgbench(target, 'bench_native')]);
    for (const db of ['bench_pgconvey', 'bench_native']) {
      await withClient(target, db, (c) => c.query('ALTER TABLE lag_probe ADD COLUMN received_at timestamptz NOT NULL DEFAULT clock_timestamp()'));
    }
    const run = ['-N', '-c', '4', '-j', '2'];

    // ---- pgconvey ----
    const src = spec(source, 'bench');
    const dst = spec(target, 'bench_pgconvey');
    await withClient(source, 'bench', async (c) => {
      await engine.installEngine(c);
      await engine.createQueue(c, 'bench');
      for (const t of TABLES) await engine.addTable(c, 'bench', 'public', t);
    });
    await withClient(target, 'bench_pgconvey', async (sub) => {
      await engine.installEngine(sub);
      await withClient(source, 'bench', (prov) => engine.subscribe(prov, sub, 'bench', 'target'));
      for (const t of TABLES) await engine.addSubscriberTable(sub, 'bench', 'target', 'public', t);
    });
    const tickerStop = new AbortController();
    const ticker = runTickerDaemon({ provider: src, queue: 'bench', log: quiet, signal: tickerStop.signal });
    const startWorker = () => {
      const stop = new AbortController();
      const done = runWorkerDaemon({ provider: src, subscriber: dst, queue: 'bench', consumer: 'target', log: quiet, signal: stop.signal });
      return async () => {
        stop.abort();
        await done;
      };
    };
    const completedTick = () => withClient(target, 'bench_pgconvey', async (c) => BigInt((await c.query('SELECT completed_tick FROM pgconvey.subscription')).rows[0].completed_tick));
    const caughtUp = async () => {
      const t = await withClient(source, 'bench', (c) => engine.forceTick(c, 'bench'));
      await waitUntil('pgconvey to catch up', async () => (await completedTick()) >= BigInt(t));
    };

    // Capture overhead: rounds with the capture triggers disabled and enabled, interleaved, so that
    // the machine's drift hits both alike; the medians are compared.
    const setTriggers = (on: boolean) =>
      withClient(source, 'bench', async (c) => {
        for (const t of TABLES) await c.query(`ALTER TABLE ${t} ${on ? 'ENABLE' : 'DISABLE'} TRIGGER pgconvey_capture_1`);
      });
    const roundSeconds = Math.max(5, Math.round(SECONDS / 3));
    const baseRounds: number[] = [];
    const captureRounds: number[] = [];
    for (let round = 0; round < 3; round++) {
      await setTriggers(false);
      baseRounds.push((await pgbench(source, 'bench', [...run, '-T', String(roundSeconds)])).tps);
      await setTriggers(true);
      captureRounds.push((await pgbench(source, 'bench', [...run, '-T', String(roundSeconds)])).tps);
      log(`  round ${round + 1}: ${baseRounds[round]!.toFixed(0)} tps without capture, ${captureRounds[round]!.toFixed(0)} tps capturing (ticker running, worker stopped)`);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const baseTps = median(baseRounds);
    const captureTps = median(captureRounds);
    // (The rounds without triggers changed the source unseen by the subscriber. That does not
    // disturb the measurements: replayed updates find their rows, new history ids never collide.)
    let stopWorker = startWorker();
    await caughtUp();
    log(`TPS with pgconvey capturing and replicating: pgbench ${run.join(' ')} -T ${SECONDS}`);
    const pgcTps = (await pgbench(source, 'bench', [...run, '-T', String(SECONDS)])).tps;
    log(`  ${pgcTps.toFixed(0)} tps`);
    await caughtUp();
    await stopWorker();

    // Catch-up, three times; the median counts.
    const pgcRates: number[] = [];
    let backlogEvents = 0;
    let t0 = 0;
    for (let round = 0; round < 3; round++) {
      await stopWorker();
      await pgbench(source, 'bench', [...run, '-t', String(BACKLOG_TX_PER_CLIENT)]);
      const backlogTick = await withClient(source, 'bench', (c) => engine.forceTick(c, 'bench'));
      const events = await withClient(source, 'bench', async (c) => Number((await engine.queueStatus(c, 'bench'))[0]!.pendingEvents));
      t0 = Date.now();
      stopWorker = startWorker();
      await waitUntil('pgconvey catch-up', async () => (await completedTick()) >= BigInt(backlogTick));
      const ms = Date.now() - t0;
      pgcRates.push(Math.round(events / (ms / 1000)));
      log(`  catch-up ${round + 1}: ${events} row changes in ${(ms / 1000).toFixed(2)} s = ${pgcRates[round]} rows/s`);
      backlogEvents = events;
    }

    log(`pgconvey lag at ${RATE} tps for ${LAG_SECONDS} s`);
    let fromProbe = await maxProbeId(source, 'bench');
    let probe = startProbe(source, 'bench');
    await pgbench(source, 'bench', [...run, '-R', String(RATE), '-T', String(LAG_SECONDS)]);
    await probe.stop();
    await caughtUp();
    const pgcLag = await probeLag(target, 'bench_pgconvey', fromProbe);
    log(`  median ${pgcLag.median.toFixed(0)} ms, p95 ${pgcLag.p95.toFixed(0)} ms, max ${pgcLag.max.toFixed(0)} ms (${pgcLag.n} probes)`);
    await stopWorker();
    tickerStop.abort();
    await ticker;
    await withClient(source, 'bench', async (c) => {
      for (const t of TABLES) await engine.removeTable(c, 'bench', 'public', t);
    });

    // ---- native logical replication ----
    log('native logical replication: publication on the source, subscription on the target');
    await withClient(source, 'bench', (c) => c.query(`CREATE PUBLICATION bench_pub FOR TABLE ${TABLES.join(', ')}`));
    await withClient(target, 'bench_native', async (c) => {
      // Align the subscriber with the source first (the pgconvey phases changed the source).
      for (const t of ['pgbench_accounts', 'pgbench_branches', 'pgbench_tellers', 'pgbench_history', 'lag_probe']) await c.query(`TRUNCATE ${t}`);
      await c.query(
        `CREATE SUBSCRIPTION bench_sub CONNECTION 'host=${source.host} port=${source.port} user=postgres dbname=bench' PUBLICATION bench_pub WITH (copy_data = true)`,
      );
    });
    await waitUntil('the initial sync of native logical replication', () =>
      withClient(target, 'bench_native', async (c) => Number((await c.query("SELECT count(*) AS n FROM pg_subscription_rel WHERE srsubstate <> 'r'")).rows[0].n) === 0),
    );
    const nativeCaughtUp = async () => {
      const marker = await withClient(source, 'bench', async (c) => Number((await c.query('INSERT INTO lag_probe (sent_at) VALUES (clock_timestamp()) RETURNING id')).rows[0].id));
      await waitUntil('native replication to catch up', () =>
        withClient(target, 'bench_native', async (c) => Number((await c.query('SELECT count(*) AS n FROM lag_probe WHERE id = $1', [marker])).rows[0].n) === 1),
      );
    };
    log(`TPS with native logical replication: pgbench ${run.join(' ')} -T ${SECONDS}`);
    const nativeTps = (await pgbench(source, 'bench', [...run, '-T', String(SECONDS)])).tps;
    log(`  ${nativeTps.toFixed(0)} tps`);
    await nativeCaughtUp();

    log(`native catch-up: the same backlog with the subscription disabled, three times`);
    const nativeEvents = BACKLOG_TX_PER_CLIENT * 4 * 2;
    const nativeRates: number[] = [];
    for (let round = 0; round < 3; round++) {
      await withClient(target, 'bench_native', (c) => c.query('ALTER SUBSCRIPTION bench_sub DISABLE'));
      await pgbench(source, 'bench', [...run, '-t', String(BACKLOG_TX_PER_CLIENT)]);
      t0 = Date.now();
      await withClient(target, 'bench_native', (c) => c.query('ALTER SUBSCRIPTION bench_sub ENABLE'));
      await nativeCaughtUp();
      const ms = Date.now() - t0;
      nativeRates.push(Math.round(nativeEvents / (ms / 1000)));
      log(`  catch-up ${round + 1}: ${nativeEvents} row changes in ${(ms / 1000).toFixed(2)} s = ${nativeRates[round]} rows/s`);
    }

    log(`native lag at ${RATE} tps for ${LAG_SECONDS} s`);
    fromProbe = await maxProbeId(source, 'bench');
    probe = startProbe(source, 'bench');
    await pgbench(source, 'bench', [...run, '-R', String(RATE), '-T', String(LAG_SECONDS)]);
    await probe.stop();
    await nativeCaughtUp();
    const nativeLag = await probeLag(target, 'bench_native', fromProbe);
    log(`  median ${nativeLag.median.toFixed(1)} ms, p95 ${nativeLag.p95.toFixed(1)} ms, max ${nativeLag.max.toFixed(1)} ms (${nativeLag.n} probes)`);
    await withClient(target, 'bench_native', (c) => c.query('DROP SUBSCRIPTION bench_sub'));

    const loss = (tps: number) => `${(((tps - baseTps) / baseTps) * 100).toFixed(0)}%`;
    const pgcRate = median(pgcRates);
    const nativeRate = median(nativeRates);
    const report = [
      `### Engine: capture overhead, catch-up and lag — ${new Date().toISOString().slice(0, 10)}`,
      '',
      `Command: \`npm run bench:engine -- --scale ${SCALE} --seconds ${SECONDS} --backlog ${BACKLOG_TX_PER_CLIENT * 4}\` at commit ${gitCommit()} (took ${Math.round((Date.now() - started) / 1000)} s).`,
      `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB; Node ${process.version}; PostgreSQL ${source.version} (source, wal_level=logical) → ${target.version} (target), both local, embedded test settings (fsync off).`,
      `Workload: pgbench scale ${SCALE}, \`-N -c 4 -j 2\`; \`pgbench_history\` given a bigserial primary key. Each -N transaction changes 2 rows.`,
      '',
      '| measure | without replication | pgconvey | native logical replication |',
      '| --- | --- | --- | --- |',
      `| TPS, \`pgbench -N -c 4 -j 2\`, capture only (worker stopped): median of 3 interleaved ${roundSeconds} s rounds | ${baseTps.toFixed(0)} | ${captureTps.toFixed(0)} (${loss(captureTps)}) | — |`,
      `| TPS, same, replication running (apply on the same 2 cores), one ${SECONDS} s run | ${baseTps.toFixed(0)} | ${pgcTps.toFixed(0)} (${loss(pgcTps)}) | ${nativeTps.toFixed(0)} (${loss(nativeTps)}) |`,
      `| catch-up of ${BACKLOG_TX_PER_CLIENT * 4} transactions (about ${backlogEvents} row changes) built with the apply side stopped: median of 3 (all three) | — | **${pgcRate} rows/s** (${pgcRates.join(', ')}) | **${nativeRate} rows/s** (${nativeRates.join(', ')}) |`,
      `| lag at ${RATE} tps (probe row every 100 ms, ${LAG_SECONDS} s) | — | median ${pgcLag.median.toFixed(0)} ms, p95 ${pgcLag.p95.toFixed(0)} ms, max ${pgcLag.max.toFixed(0)} ms | median ${nativeLag.median.toFixed(1)} ms, p95 ${nativeLag.p95.toFixed(1)} ms, max ${nativeLag.max.toFixed(1)} ms |`,
      '',
    ].join('\n');
    publish(report);
  } finally {
    await Promise.all([source.stop(), target.stop()]);
  }
}

runMain(main);
