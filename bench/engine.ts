/**
 * Engine benchmark: pgconvey against native logical replication in the same
 * run, on the same two local servers (old source → new target), at durable
 * production settings (bench/pg.ts: startBenchServers), pgconvey being the
 * real `pgconvey run` (compiled dist/, ticker and worker as two processes via
 * --node, so each can be switched off alone).
 *
 *  1. TPS, pgbench -N -c 4 -j 2, in interleaved rounds of five modes, each
 *     replication alone (the other switched off):
 *       plain    — no capture trigger, no slot being read;
 *       capture  — pgconvey's capture triggers and ticker on, worker off;
 *       decode   — a logical slot being decoded (pg_recvlogical, test_decoding → /dev/null), no triggers: WAL decoding's own cost;
 *       pgconvey — capturing and replicating (ticker and worker);
 *       native   — native logical replication (publication → subscription) replicating.
 *  2. catch-up: per round, a backlog of pgbench -N transactions built with the
 *     apply side stopped, applied by pgconvey's worker; then the same number of
 *     transactions built with the subscription disabled, applied by native LR.
 *  3. lag p50/p95 at each --rates, probe row every 100 ms, interleaved rounds.
 *  4. peak RSS of the `run` processes in each phase.
 *
 * Usage: npm run bench:engine [-- --scale 20 --rounds 3 --seconds 15 --backlog 100000 --rates 500,2000 --lag-seconds 15 --ticker-min-interval 20ms]
 *        npm run bench:engine -- --quick      (a smoke run of a minute or two; printed, not written to docs/)
 *        npm run bench:engine -- --phases lag (only some of the measurements: tps, catchup, lag; while developing —
 *                                              with BENCH_REPORT=/tmp/x.md, so docs/benchmarks.md gets no partial table)
 * Needs pgbench and pg_recvlogical (Debian: apt-get install postgresql-15). Appends to docs/benchmarks.md.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { parseArgs } from 'node:util';
import type { RunningServer } from '../src/embedded/index.js';
import {
  copySchema,
  createSubscription,
  interleaved,
  log,
  median,
  mib,
  nativeAllSynced,
  pgbench,
  pgconveyAllCopied,
  pgconveyCaughtUp,
  planAndApply,
  ratio,
  secs,
  setSubscription,
  spread,
  sql,
  startBenchServers,
  startRun,
  waitUntil,
  withClient,
  writeDesiredState,
  type RunProcess,
} from './pg.js';
import { commandLine, header, mdTable, publish, requireTool, runMain } from './report.js';

const { values: args } = parseArgs({
  options: {
    'ticker-min-interval': { type: 'string' },
    scale: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '15' },
    backlog: { type: 'string', default: '100000' },
    rates: { type: 'string', default: '500,2000' },
    'lag-seconds': { type: 'string', default: '15' },
    source: { type: 'string', default: '12' },
    target: { type: 'string', default: '17' },
    quick: { type: 'boolean', default: false },
    /** Which measurements to take (a developer's shortcut; the published run takes all three). */
    phases: { type: 'string', default: 'tps,catchup,lag' },
  },
});
const QUICK = args.quick!;
const SCALE = QUICK ? 1 : Number(args.scale);
const ROUNDS = QUICK ? 1 : Number(args.rounds);
const SECONDS = QUICK ? 3 : Number(args.seconds);
const BACKLOG_TX = QUICK ? 4000 : Number(args.backlog);
const RATES = args.rates!.split(',').map(Number);
const LAG_SECONDS = QUICK ? 3 : Number(args['lag-seconds']);
const PHASES = new Set(args.phases!.split(','));
const TABLES = ['pgbench_accounts', 'pgbench_branches', 'pgbench_tellers', 'pgbench_history', 'lag_probe'];
const LOAD = ['-N', '-c', '4', '-j', '2'];
const SRC = 'bench';
const PGC = 'bench'; // pgconvey's target database
const NAT = 'bench_native'; // native LR's target database
const SUB = 'bench_native'; // the subscription (and its slot)

type Mode = 'plain' | 'capture' | 'decode' | 'pgconvey' | 'native';

async function main(): Promise<void> {
  requireTool('pgbench', 'postgresql-15');
  const recvlogical = requireTool('pg_recvlogical', 'postgresql-15');
  const started = Date.now();
  log(`starting PostgreSQL ${args.source} (source) and ${args.target} (target), durable settings`);
  const { source, target } = await startBenchServers(Number(args.source), Number(args.target));
  const procs: { ticker?: RunProcess; worker?: RunProcess; recv?: ChildProcess } = {};
  try {
    await sql(source, 'postgres', `CREATE DATABASE ${SRC}`);
    log(`pgbench -i -s ${SCALE} on the source`);
    await pgbench(source, SRC, ['-i', '-s', String(SCALE), '-q']);
    await withClient(source, SRC, async (c) => {
      await c.query('ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY');
      await c.query('CREATE TABLE lag_probe (id bigserial PRIMARY KEY, sent_at timestamptz NOT NULL)');
      await c.query('VACUUM ANALYZE');
    });
    for (const db of [PGC, NAT]) await sql(target, 'postgres', `CREATE DATABASE ${db}`);

    // ---- native logical replication: schema, publication, subscription (initial sync) ----
    await copySchema(source, SRC, target, NAT);
    await sql(target, NAT, 'ALTER TABLE lag_probe ADD COLUMN received_at timestamptz NOT NULL DEFAULT clock_timestamp()');
    await sql(source, SRC, `CREATE PUBLICATION bench_pub FOR TABLE ${TABLES.join(', ')}`);
    let t0 = Date.now();
    await createSubscription(source, SRC, target, NAT, SUB, 'bench_pub');
    await waitUntil('the initial sync of native logical replication', () => nativeAllSynced(target, NAT), 1_800_000, 100);
    const nativeSyncMs = Date.now() - t0;
    log(`native initial sync: ${secs(nativeSyncMs)}`);
    await setSubscription(source, SRC, target, NAT, SUB, false);

    // ---- pgconvey: apply the file (schema copied with pg_dump), run until copied ----
    const file = writeDesiredState(source, SRC, target, PGC, { tickerMinInterval: args['ticker-min-interval'] });
    t0 = Date.now();
    const { planMs, applyMs } = await planAndApply(file);
    await sql(target, PGC, 'ALTER TABLE lag_probe ADD COLUMN received_at timestamptz NOT NULL DEFAULT clock_timestamp()');
    const setupRun = await startRun(file);
    await waitUntil('pgconvey to copy every table', () => pgconveyAllCopied(target, PGC), 1_800_000, 100);
    const pgcSetupMs = Date.now() - t0;
    await pgconveyCaughtUp(source, SRC, target, PGC);
    const setupRss = await setupRun.stop();
    log(`pgconvey plan ${secs(planMs)}, apply ${secs(applyMs)}, replicating after ${secs(pgcSetupMs)} (run peak RSS ${mib(setupRss)})`);

    // The capture triggers as installed (enabled ones only: toggled off for the rounds without pgconvey).
    const triggers = await sql<{ rel: string; name: string }>(
      source,
      SRC,
      `SELECT t.tgrelid::regclass::text AS rel, t.tgname AS name FROM pg_trigger t
        WHERE NOT t.tgisinternal AND t.tgenabled <> 'D' AND t.tgrelid = ANY ($1::regclass[]) AND t.tgname LIKE 'pgconvey%'`,
      [TABLES],
    );
    let triggersOn = true;
    const setTriggers = async (on: boolean) => {
      if (on === triggersOn) return;
      await withClient(source, SRC, async (c) => {
        for (const t of triggers) await c.query(`ALTER TABLE ${t.rel} ${on ? 'ENABLE' : 'DISABLE'} TRIGGER ${JSON.stringify(t.name)}`);
      });
      triggersOn = on;
    };
    let subOn = false;
    const setNative = async (on: boolean) => {
      if (on === subOn) return;
      await setSubscription(source, SRC, target, NAT, SUB, on);
      subOn = on;
    };
    const peaks = { ticker: [] as number[], worker: [] as number[] };
    const setTicker = async (on: boolean) => {
      if (on && !procs.ticker) procs.ticker = await startRun(file, ['--node', 'old_root']);
      if (!on && procs.ticker) {
        peaks.ticker.push(await procs.ticker.stop());
        procs.ticker = undefined;
      }
    };
    const setWorker = async (on: boolean) => {
      if (on && !procs.worker) procs.worker = await startRun(file, ['--node', 'new_leaf']);
      if (!on && procs.worker) {
        peaks.worker.push(await procs.worker.stop());
        procs.worker = undefined;
      }
    };
    const setDecode = async (on: boolean) => {
      if (on && !procs.recv) {
        await sql(source, SRC, "SELECT pg_create_logical_replication_slot('bench_decode', 'test_decoding')");
        procs.recv = spawn(recvlogical, ['-h', source.host, '-p', String(source.port), '-U', 'postgres', '-d', SRC, '-S', 'bench_decode', '--start', '-f', '/dev/null', '-F', '1'], { stdio: 'ignore' });
        await waitUntil('pg_recvlogical to read its slot', async () => (await sql(source, SRC, "SELECT active FROM pg_replication_slots WHERE slot_name = 'bench_decode'"))[0]?.active === true, 30_000);
      }
      if (!on && procs.recv) {
        const r = procs.recv;
        const gone = new Promise((res) => r.once('exit', res));
        r.kill('SIGINT');
        await gone;
        procs.recv = undefined;
        await waitUntil('the decode slot to be released', async () => (await sql(source, SRC, "SELECT active FROM pg_replication_slots WHERE slot_name = 'bench_decode'"))[0]?.active === false, 30_000);
        await sql(source, SRC, "SELECT pg_drop_replication_slot('bench_decode')");
      }
    };
    /** A marker row on the source; resolves once native LR has applied it (everything before it is applied). */
    const nativeCaughtUp = async () => {
      const id = Number((await sql(source, SRC, 'INSERT INTO lag_probe (sent_at) VALUES (clock_timestamp()) RETURNING id'))[0].id);
      await waitUntil('native logical replication to catch up', async () => (await sql(target, NAT, 'SELECT 1 FROM lag_probe WHERE id = $1', [id])).length === 1);
    };
    const pgcCaughtUp = () => pgconveyCaughtUp(source, SRC, target, PGC);

    /** Switches everything to `mode` (the others off) and waits until the replication of that mode has caught up. */
    const enter = async (mode: Mode) => {
      const pgc = mode === 'capture' || mode === 'pgconvey';
      if (mode !== 'pgconvey') await setWorker(false);
      if (!pgc) await setTicker(false);
      if (mode !== 'native') await setNative(false);
      if (mode !== 'decode') await setDecode(false);
      await setTriggers(pgc);
      if (pgc) await setTicker(true);
      if (mode === 'pgconvey') {
        await setWorker(true);
        await pgcCaughtUp();
      }
      if (mode === 'native') {
        await setNative(true);
        await nativeCaughtUp();
      }
      if (mode === 'decode') await setDecode(true);
    };

    // ---- 1. TPS in interleaved rounds ----
    const modes: Mode[] = ['plain', 'capture', 'decode', 'pgconvey', 'native'];
    log(`TPS: ${ROUNDS} interleaved rounds of ${SECONDS} s, pgbench ${LOAD.join(' ')}, modes ${modes.join(', ')}`);
    const tps = await interleaved(PHASES.has('tps') ? ROUNDS : 0, modes, async (mode, round) => {
      await enter(mode);
      await withClient(source, SRC, (c) => c.query('CHECKPOINT'));
      const r = (await pgbench(source, SRC, [...LOAD, '-T', String(SECONDS)])).tps;
      log(`  round ${round + 1} ${mode}: ${r.toFixed(0)} tps`);
      return r;
    });
    const tpsWorkerPeak = Math.max(0, ...peaks.worker);

    // ---- 2. catch-up of the same number of transactions ----
    log(`catch-up: ${ROUNDS} rounds of a ${BACKLOG_TX}-transaction backlog (${BACKLOG_TX * 2} row changes) for each`);
    const catchup = { pgconvey: [] as number[], native: [] as number[] };
    const catchupPeaks: number[] = [];
    for (let round = 0; round < (PHASES.has('catchup') ? ROUNDS : 0); round++) {
      // pgconvey: triggers and ticker on, worker off while the backlog is written.
      await enter('capture');
      await setWorker(true);
      await pgcCaughtUp();
      await setWorker(false);
      await pgbench(source, SRC, [...LOAD, '-t', String(Math.ceil(BACKLOG_TX / 4))]);
      const tick = BigInt((await sql(source, SRC, "SELECT pgconvey.force_tick('bench') AS t"))[0].t);
      const w = await startRun(file, ['--node', 'new_leaf']);
      const tw = Date.now();
      await waitUntil('pgconvey catch-up', async () => BigInt((await sql(target, PGC, 'SELECT completed_tick FROM pgconvey.subscription'))[0].completed_tick ?? 0) >= tick, 1_800_000, 10);
      catchup.pgconvey.push(Date.now() - tw);
      catchupPeaks.push(await w.stop());
      // native: the slot first reads what the pgconvey backlog wrote (untimed), then a backlog of its own.
      await enter('native');
      await setNative(false);
      await setTriggers(false);
      await pgbench(source, SRC, [...LOAD, '-t', String(Math.ceil(BACKLOG_TX / 4))]);
      const id = Number((await sql(source, SRC, 'INSERT INTO lag_probe (sent_at) VALUES (clock_timestamp()) RETURNING id'))[0].id);
      const tn = Date.now();
      await setNative(true);
      await waitUntil('native catch-up', async () => (await sql(target, NAT, 'SELECT 1 FROM lag_probe WHERE id = $1', [id])).length === 1, 1_800_000, 10);
      catchup.native.push(Date.now() - tn);
      log(`  round ${round + 1}: pgconvey ${secs(catchup.pgconvey.at(-1)!)} (peak RSS ${mib(catchupPeaks.at(-1)!)}), native ${secs(catchup.native.at(-1)!)}`);
    }

    // ---- 3. lag at each rate ----
    const lag: Record<string, { p50: number[]; p95: number[]; tps: number[] }> = {};
    const lagPeaks: number[] = [];
    for (const rate of PHASES.has('lag') ? RATES : []) {
      for (const tool of ['pgconvey', 'native'] as const) lag[`${tool}@${rate}`] = { p50: [], p95: [], tps: [] };
      await interleaved(ROUNDS, ['pgconvey', 'native'] as const, async (tool, round) => {
        await enter(tool);
        const db = tool === 'pgconvey' ? PGC : NAT;
        const from = Number((await sql(source, SRC, 'SELECT coalesce(max(id), 0) AS m FROM lag_probe'))[0].m);
        const probe = startProbe(source);
        const r = (await pgbench(source, SRC, [...LOAD, '-R', String(rate), '-T', String(LAG_SECONDS)])).tps;
        await probe.stop();
        if (tool === 'pgconvey') await pgcCaughtUp();
        else await nativeCaughtUp();
        const [s] = await sql(
          target,
          db,
          `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50, percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) AS p95, count(*) AS n
             FROM (SELECT extract(epoch FROM received_at - sent_at) * 1000 AS ms FROM lag_probe WHERE id > $1) x`,
          [from],
        );
        const k = `${tool}@${rate}`;
        lag[k]!.p50.push(Number(s.p50));
        lag[k]!.p95.push(Number(s.p95));
        lag[k]!.tps.push(r);
        if (tool === 'pgconvey') lagPeaks.push(procs.worker?.peakRss() ?? 0);
        log(`  lag round ${round + 1} ${tool} at ${rate} tps (${r.toFixed(0)} achieved): p50 ${Number(s.p50).toFixed(1)} ms, p95 ${Number(s.p95).toFixed(1)} ms (${s.n} probes)`);
        return Number(s.p50);
      });
    }
    await enter('plain');
    const tickerPeak = Math.max(0, ...peaks.ticker);

    const t = (m: Mode) => median(tps[m]);
    const ofPlain = (m: Mode) => `${((t(m) / t('plain')) * 100).toFixed(0)}% of plain`;
    const rowsPerS = (ms: number) => (BACKLOG_TX * 2) / (ms / 1000);
    const ms1 = (x: number) => x.toFixed(1);
    const lines = [
      ...(await header('Engine: TPS, capture cost, catch-up, lag, memory', commandLine('bench:engine'), started, [['source', source], ['target', target]], QUICK)),
      `Workload: pgbench scale ${SCALE} (\`pgbench_history\` given a bigserial primary key), \`pgbench ${LOAD.join(' ')}\`; each -N transaction changes 2 rows. pgconvey is the compiled \`pgconvey run\` (ticker \`--node old_root\` and worker \`--node new_leaf\` as two processes); native is a publication of the same 5 tables and a subscription on the same target server (subscription defaults: synchronous_commit off). Each figure: median (min–max, n rounds).`,
      '',
      ...mdTable(
        ['measure', 'plain', 'pgconvey', 'native logical replication', 'pgconvey / native'],
        [
          ...(PHASES.has('tps') ? [[`TPS, capture only (pgconvey: triggers + ticker, worker off; native: a slot decoded by pg_recvlogical/test_decoding), ${SECONDS} s rounds`, spread(tps.plain), `${spread(tps.capture)} — ${ofPlain('capture')}`, `${spread(tps.decode)} — ${ofPlain('decode')}`, ratio(t('capture'), t('decode'))],
          [`TPS, replicating (apply on the same cores), ${SECONDS} s rounds`, spread(tps.plain), `${spread(tps.pgconvey)} — ${ofPlain('pgconvey')}`, `${spread(tps.native)} — ${ofPlain('native')}`, ratio(t('pgconvey'), t('native'))]] : []),
          ...(PHASES.has('catchup') ? [[`catch-up of ${BACKLOG_TX} transactions (${BACKLOG_TX * 2} row changes) built with the apply side stopped`, '—', `${spread(catchup.pgconvey, secs)} = ${Math.round(rowsPerS(median(catchup.pgconvey))).toLocaleString('en-US')} rows/s`, `${spread(catchup.native, secs)} = ${Math.round(rowsPerS(median(catchup.native))).toLocaleString('en-US')} rows/s`, `**${ratio(median(catchup.native), median(catchup.pgconvey))}** (speed)`]] : []),
          ...(PHASES.has('lag') ? RATES : []).flatMap((rate) => {
            const p = lag[`pgconvey@${rate}`]!;
            const n = lag[`native@${rate}`]!;
            return [[`lag at ${rate} tps (achieved: pgconvey ${median(p.tps).toFixed(0)}, native ${median(n.tps).toFixed(0)}), probe every 100 ms, ${LAG_SECONDS} s rounds: p50 / p95 in ms`, '—', `p50 ${spread(p.p50, ms1)}; p95 ${spread(p.p95, ms1)}`, `p50 ${spread(n.p50, ms1)}; p95 ${spread(n.p95, ms1)}`, ratio(median(p.p50), median(n.p50))]];
          }),
          ['empty target → replicating (schema + copy of the 5 tables)', '—', `${secs(pgcSetupMs)} (plan ${secs(planMs)}, apply ${secs(applyMs)})`, `${secs(nativeSyncMs)} (subscription's initial sync; schema by pg_dump -s before, untimed)`, '—'],
        ],
      ),
      '',
      `Peak RSS of \`pgconvey run\`: the setup run (copy of scale ${SCALE}) ${mib(setupRss)}; ${[PHASES.has('tps') ? `the worker during the TPS rounds ${mib(tpsWorkerPeak)}` : '', PHASES.has('catchup') ? `during catch-up ${spread(catchupPeaks, mib)}` : '', PHASES.has('lag') ? `during the lag rounds ${mib(Math.max(0, ...lagPeaks))}` : ''].filter(Boolean).join(', ')}; the ticker ${mib(tickerPeak)}.`,
      '',
    ];
    publish(lines.join('\n'), QUICK);
  } finally {
    await procs.worker?.stop().catch(() => undefined);
    await procs.ticker?.stop().catch(() => undefined);
    procs.recv?.kill('SIGINT');
    await Promise.all([source.stop(), target.stop()]);
  }
}

/** Inserts a probe row every 100 ms until stopped. */
function startProbe(s: RunningServer): { stop: () => Promise<void> } {
  let running = true;
  const done = withClient(s, SRC, async (c) => {
    while (running) {
      await c.query('INSERT INTO lag_probe (sent_at) VALUES (clock_timestamp())');
      await new Promise((r) => setTimeout(r, 100));
    }
  });
  return {
    stop: async () => {
      running = false;
      await done;
    },
  };
}

runMain(main);
