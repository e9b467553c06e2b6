/**
 * `pgconvey run` for real, on private servers (old and new major) so they can
 * be restarted: under a seeded concurrent writer, the provider is restarted
 * once and the subscriber once; replication resumes by itself, every table
 * ends equal row by row (checked independently), `status --json` reports all
 * running, `/metrics` counts batches and the errors the restarts caused, and
 * SIGTERM stops it cleanly. Replay with PGCONVEY_SEED=<seed>.
 */
import { createServer } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/embedded/index.js';
import { runCli } from '../harness/cli.js';
import { diffTable, waitFor } from '../harness/compare.js';
import { writeTwoNodeFile } from '../harness/desired-file.js';
import { startCli, type CliProcess } from '../harness/processes.js';
import { createRng, testSeed } from '../harness/random.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const SEED = testSeed();
const SCHEMA = `
  CREATE TABLE public.accounts (id int PRIMARY KEY, balance numeric(12,2) NOT NULL, note text);
  CREATE TABLE public.events (id bigserial PRIMARY KEY, account_id int NOT NULL, amount numeric(12,2));`;
const TABLES: Array<[string, string[]]> = [
  ['public.accounts', ['id']],
  ['public.events', ['id']],
];

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const clientOf = (s: RunningServer) => new pg.Client({ host: s.host, port: s.port, user: s.user, database: 'shop' });

describe(`pgconvey run across server restarts (seed ${SEED})`, () => {
  let old: RunningServer;
  let neu: RunningServer;
  let file: string;
  let run: CliProcess | undefined;

  beforeAll(async () => {
    console.log(`[cli-run] seed ${SEED} (replay with PGCONVEY_SEED=${SEED})`);
    [old, neu] = await Promise.all([startServer({ major: sourceServer().major }), startServer({ major: targetServer().major })]);
    for (const s of [old, neu]) {
      const admin = new pg.Client({ host: s.host, port: s.port, user: s.user, database: 'postgres' });
      await admin.connect();
      await admin.query('CREATE DATABASE shop');
      await admin.end();
      const c = clientOf(s);
      await c.connect();
      await c.query(SCHEMA);
      await c.end();
    }
    const c = clientOf(old);
    await c.connect();
    await c.query("INSERT INTO public.accounts SELECT g, g, 'seed' FROM generate_series(1, 5000) g; INSERT INTO public.events (account_id, amount) SELECT 1 + g % 5000, g FROM generate_series(1, 20000) g");
    await c.end();
    file = writeTwoNodeFile({
      oldDsn: `host=${old.host} port=${old.port} user=${old.user} dbname=shop`,
      newDsn: `host=${neu.host} port=${neu.port} user=${neu.user} dbname=shop`,
      sequences: ['public.*'],
      extra: 'daemons:\n  worker: { retry_delay: 200ms }',
    });
  }, 120_000);

  afterAll(async () => {
    if (run && run.child.exitCode === null) console.log(`[cli-run] last lines of pgconvey run:\n${run.lines.slice(-40).join('\n')}`);
    await run?.kill('SIGKILL');
    await Promise.all([old?.stop(), neu?.stop()]);
  });

  it('resumes by itself after each server restarts, and ends exact', { timeout: 240_000 }, async () => {
    const applied = await runCli(['apply', file, '--auto-approve']);
    expect(applied.code, applied.stdout).toBe(0);
    const metricsPort = await freePort();
    run = startCli(['run', file, '--metrics-port', String(metricsPort), '--metrics-host', '127.0.0.1', '--log-format', 'json']);
    await run.waitForLine(/"msg":"applying"/, 30_000);

    // A seeded writer that survives the provider's restart: it reconnects, and a failed statement is simply not counted.
    const rng = createRng(SEED);
    let stop = false;
    let committed = 0;
    const writer = (async () => {
      let c: pg.Client | undefined;
      while (!stop) {
        try {
          if (!c) {
            c = clientOf(old);
            c.on('error', () => undefined);
            await c.connect();
          }
          const id = rng.int(1, 6000);
          const op = rng.int(0, 9);
          if (op < 4) await c.query('INSERT INTO public.events (account_id, amount) VALUES ($1, $2)', [id, rng.int(1, 999)]);
          else if (op < 7) await c.query('INSERT INTO public.accounts VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET balance = EXCLUDED.balance, note = EXCLUDED.note', [id, rng.int(0, 9999), `w${rng.int(0, 99)}`]);
          else if (op < 9) await c.query('UPDATE public.events SET amount = amount + 1 WHERE id = $1', [rng.int(1, 20000)]);
          else await c.query('DELETE FROM public.accounts WHERE id = $1', [id]);
          committed++;
        } catch {
          await c?.end().catch(() => undefined);
          c = undefined;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      await c?.end().catch(() => undefined);
    })();

    const allOk = async () => {
      const r = await runCli(['status', file, '--json']);
      const s = JSON.parse(r.stdout);
      return s.healthy && s.queues[0].subscribers[0].tables.every((t: { state: string }) => t.state === 'ok');
    };
    const step = (what: string) => console.log(`[cli-run] ${new Date().toISOString()} ${what} (writes so far: ${committed})`);
    await waitFor('every table copied and merged', allOk, 90_000, 250);
    step('copied and merged');
    const progress = async (n: number) => waitFor(`${n} more writes`, async () => committed >= n, 60_000);

    await progress(committed + 200);
    const applyingBefore = run.lines.filter((l) => l.includes('"msg":"applying"')).length;
    await old.restart();
    step('provider restarted');
    await progress(committed + 200);
    await waitFor('the worker to resume after the provider restarted', async () => run!.lines.filter((l) => l.includes('"msg":"applying"')).length > applyingBefore, 60_000);
    const applyingMid = run.lines.filter((l) => l.includes('"msg":"applying"')).length;
    step('worker resumed');
    await neu.restart();
    step('subscriber restarted');
    await progress(committed + 200);
    await waitFor('the worker to resume after the subscriber restarted', async () => run!.lines.filter((l) => l.includes('"msg":"applying"')).length > applyingMid, 60_000);
    step('worker resumed again');
    stop = true;
    await writer;
    step('writer stopped');

    const [p, s] = [clientOf(old), clientOf(neu)];
    await p.connect();
    await s.connect();
    try {
      await waitFor('both sides equal row by row', async () => {
        for (const [t, k] of TABLES) {
          const d = await diffTable(p, s, t, k);
          if (d.missing.length || d.extra.length || d.providerRows !== d.subscriberRows) return false;
        }
        return true;
      }, 60_000, 250);
    } finally {
      await p.end();
      await s.end();
    }

    const compared = await runCli(['compare', file], { timeoutMs: 60_000 });
    expect(compared.code, compared.stdout).toBe(0);
    expect(compared.stdout).toMatch(/✓ public\.accounts/);

    const status = JSON.parse((await runCli(['status', file, '--json'])).stdout);
    expect(status.healthy, JSON.stringify(status.problems)).toBe(true);
    expect(status.queues[0].root.ticker_running).toBe(true);
    expect(status.queues[0].subscribers[0].worker_running).toBe(true);

    await waitFor('metrics to count batches and the errors of the restarts', async () => {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
      return value('pgconvey_batches_applied_total{queue="shop",node="new_leaf"}') > 0 && value('pgconvey_errors_total{component="worker"}') >= 1 && text.includes('pgconvey_lag_seconds{queue="shop",node="new_leaf"}');
    }, 30_000, 500);

    // A switchover with --reverse while run runs: run finds the reverse replication and applies new → old;
    // switching back stops it, and forward replication goes on.
    const rowOn = async (server: RunningServer, sql: string, params: unknown[]) => {
      const c = clientOf(server);
      await c.connect();
      try {
        return (await c.query(sql, params)).rows;
      } finally {
        await c.end();
      }
    };
    const sw = await runCli(['switchover', file, '--to', 'new_leaf', '--reverse', '--auto-approve'], { timeoutMs: 90_000 });
    expect(sw.code, sw.stdout).toBe(0);
    expect(sw.stdout).toMatch(/Writes unavailable: \d+ ms/);
    await run.waitForLine(/"msg":"starting".*shop_reverse/, 30_000);
    await rowOn(neu, "INSERT INTO public.accounts VALUES (99001, 1, 'written on new')", []);
    const [newEvent] = await rowOn(neu, 'INSERT INTO public.events (account_id, amount) VALUES (99001, 5) RETURNING id', []);
    await waitFor('a write on the new root to reach the old one', async () => (await rowOn(old, 'SELECT 1 FROM public.events WHERE id = $1', [newEvent.id])).length === 1, 30_000);
    step('reverse replication ran');
    await waitFor('status to show the reverse replication running', async () => {
      const st = JSON.parse((await runCli(['status', file, '--json'])).stdout);
      const rev = st.queues.find((q: { reverse: boolean }) => q.reverse);
      return !!rev && rev.queue === 'shop_reverse' && rev.root.node === 'new_leaf' && rev.root.ticker_running && rev.subscribers[0].node === 'old_root' && rev.subscribers[0].worker_running;
    }, 30_000, 250);
    const resync = await runCli(['resync', file, 'accounts', '--auto-approve']);
    expect(resync.code).toBe(1);
    expect(resync.stdout).toContain('error resync_after_switchover');
    const back = await runCli(['switchover', file, '--to', 'old_root', '--auto-approve'], { timeoutMs: 90_000 });
    expect(back.code, back.stdout).toBe(0);
    await run.waitForLine(/stopping: its replication was removed/, 30_000);
    await rowOn(old, "INSERT INTO public.accounts VALUES (99002, 2, 'written on old again')", []);
    await waitFor('a write on the old root to reach the new one again', async () => (await rowOn(neu, 'SELECT 1 FROM public.accounts WHERE id = 99002', [])).length === 1, 30_000);
    step('switched back; forward replication goes on');

    await run.kill('SIGTERM');
    const code = await Promise.race([run.exited, new Promise((r) => setTimeout(() => r('still running 30 s after SIGTERM'), 30_000))]);
    expect(code, run.lines.slice(-30).join('\n')).toBe(0);
    expect(run.lines.some((l) => l.includes('"msg":"stopped"'))).toBe(true);
  });
});
