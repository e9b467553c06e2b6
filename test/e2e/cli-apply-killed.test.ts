/**
 * An apply killed half way — with SIGKILL right after an action (the last of
 * its group) finished, and inside one (blocked on a table lock, so the server
 * may still finish the statement after the client is gone) — is finished by
 * running apply again:
 * the plan converges to "No changes." and every table replicates.
 */
import format from 'pg-format';
import { describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli.js';
import { diffTable, waitFor } from '../harness/compare.js';
import { freshDatabase, type TestDatabase } from '../harness/databases.js';
import { writeTwoNodeFile } from '../harness/desired-file.js';
import { startCli } from '../harness/processes.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const TABLES = Array.from({ length: 24 }, (_, i) => `t${String(i + 1).padStart(2, '0')}`);


async function applySessionsGone(db: TestDatabase): Promise<void> {
  await waitFor('the killed apply session to end', async () => (await db.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pgconvey:apply'")).rows[0].n === 0);
}

describe('apply killed half way', () => {
  it('is finished by running it again', { timeout: 180_000 }, async () => {
    const [p, s] = [await freshDatabase(sourceServer(), 'kill_p'), await freshDatabase(targetServer(), 'kill_s')];
    const ddl = TABLES.map((t) => format('CREATE TABLE public.%I (id serial PRIMARY KEY, v text);', t)).join('\n');
    await p.query(ddl);
    await s.query(ddl);
    await p.query(TABLES.map((t) => format("INSERT INTO public.%I (v) SELECT 'row ' || g FROM generate_series(1, 50) g;", t)).join('\n'));
    const file = writeTwoNodeFile({ queue: 'many', sequences: ['public.*'] });
    const env = { PGCONVEY_OLD_DSN: p.dsn, PGCONVEY_NEW_DSN: s.dsn };
    const apply = () => startCli(['apply', file, '--auto-approve'], env);

    // 1. Killed right after the sixth capture finished. Captures share transactions (src/executor/groups.ts):
    // a lock held on t07 ends the first group at t06 (committed, printed done) and keeps t07 waiting.
    const holder = await p.connect();
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE public.t07 IN SHARE MODE');
    const first = apply();
    await first.waitForLine(/capture_table:old_root:public\.t06 … done/, 60_000);
    await first.kill('SIGKILL');
    await holder.query('COMMIT');
    await holder.end();
    await applySessionsGone(p);

    // 2. Killed inside an action: capture_table of t15 waits for a lock we hold.
    const blocker = await p.connect();
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE public.t15 IN SHARE MODE');
    const second = apply();
    // Grouped captures (src/executor/groups.ts) first wait at most 50 ms for the lock inside their group, then
    // commit the ones before t15 (printed done) and run t15 alone, which waits: blocked once t14 is done.
    await waitFor('apply to block inside capture_table of t15', async () =>
      second.lines.join('\n').includes('+ capture_table:old_root:public.t14 … done') &&
      (await p.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pgconvey:apply' AND wait_event_type = 'Lock'")).rows[0].n === 1,
    60_000);
    expect(second.lines.join('\n')).toContain('+ capture_table:old_root:public.t14 … done');
    await second.kill('SIGKILL');
    await blocker.query('COMMIT');
    await blocker.end();
    await applySessionsGone(p);

    // 3. Running it again converges.
    const third = await runCli(['apply', file, '--auto-approve'], { env, timeoutMs: 120_000 });
    expect(third.code, third.stdout).toBe(0);
    expect(third.stdout).not.toContain('capture_table:old_root:public.t01');
    const plan = await runCli(['plan', file, '--detailed-exitcode'], { env });
    expect(plan.code, plan.stdout).toBe(0);
    const captured = await p.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_trigger WHERE tgname LIKE 'pgconvey%' AND tgrelid::regclass::text LIKE 't__'");
    expect(captured.rows[0]!.n).toBeGreaterThanOrEqual(TABLES.length);

    // Every table copies and replicates: nothing was left half done.
    const ticker = startCli(['engine', 'ticker', '--db', p.dsn, '--queue', 'many']);
    const worker = startCli(['engine', 'worker', '--provider', p.dsn, '--subscriber', s.dsn, '--queue', 'many', '--consumer', 'new_leaf']);
    const [pc, sc] = [await p.connect(), await s.connect()];
    try {
      await p.query(TABLES.map((t) => format("INSERT INTO public.%I (v) VALUES ('after');", t)).join('\n'));
      await waitFor('every table equal row by row', async () => {
        for (const t of TABLES) {
          const d = await diffTable(pc, sc, `public.${t}`, ['id']);
          if (d.missing.length || d.extra.length || d.providerRows !== 51) return false;
        }
        return true;
      }, 90_000, 250);
    } finally {
      await pc.end();
      await sc.end();
      await worker.kill('SIGTERM');
      await ticker.kill('SIGTERM');
    }
  });
});
