/**
 * `pgconvey run` stops promptly on SIGTERM even while a table copy waits (here
 * on a lock held on the subscriber): the copy is abandoned — its transaction
 * rolled back — and the next `run` copies the table from the start, ending
 * equal row by row.
 */
import { describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli.js';
import { diffTable, waitFor } from '../harness/compare.js';
import { freshDatabase } from '../harness/databases.js';
import { writeTwoNodeFile } from '../harness/desired-file.js';
import { startCli } from '../harness/processes.js';
import { sourceServer, targetServer } from '../harness/servers.js';

describe('pgconvey run on SIGTERM', () => {
  it('abandons a copy in progress and copies it again next time', { timeout: 120_000 }, async () => {
    const [p, s] = [await freshDatabase(sourceServer(), 'stop_p'), await freshDatabase(targetServer(), 'stop_s')];
    const ddl = 'CREATE TABLE public.big (id int PRIMARY KEY, v text); CREATE INDEX big_v ON public.big (v)';
    await p.query(ddl);
    await s.query(ddl);
    await p.query("INSERT INTO public.big SELECT g, md5(g::text) FROM generate_series(1, 20000) g");
    const file = writeTwoNodeFile();
    const env = { PGCONVEY_OLD_DSN: p.dsn, PGCONVEY_NEW_DSN: s.dsn };
    expect((await runCli(['apply', file, '--auto-approve'], { env })).code).toBe(0);

    const blocker = await s.connect();
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE public.big IN ACCESS SHARE MODE');
    const first = startCli(['run', file], env);
    try {
      await waitFor('the copy to wait for the lock', async () =>
        (await s.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pgconvey:copy' AND wait_event_type = 'Lock'")).rows[0].n > 0,
      30_000);
      await first.kill('SIGTERM');
      const code = await Promise.race([first.exited, new Promise((r) => setTimeout(() => r('still running 20 s after SIGTERM'), 20_000))]);
      expect(code, first.lines.slice(-20).join('\n')).toBe(0);
    } finally {
      await first.kill('SIGKILL');
      await blocker.query('ROLLBACK');
      await blocker.end();
    }
    const state = async () => (await s.query("SELECT state FROM pgconvey.subscriber_table WHERE table_name = 'big'")).rows[0].state;
    expect(await state()).not.toBe('ok');

    const second = startCli(['run', file], env);
    const [pc, sc] = [await p.connect(), await s.connect()];
    try {
      await p.query("UPDATE public.big SET v = 'changed' WHERE id <= 100");
      await waitFor('the table copied again and equal', async () => {
        if ((await state()) !== 'ok') return false;
        const d = await diffTable(pc, sc, 'public.big', ['id']);
        return !d.missing.length && !d.extra.length && d.providerRows === 20000;
      }, 60_000, 200);
    } finally {
      await pc.end();
      await sc.end();
      await second.kill('SIGTERM');
    }
  });
});
