/**
 * `pgconvey resync`: a table damaged on the subscriber (rows deleted and
 * changed there) is found by compare, copied again by the running
 * `pgconvey run` after resync, and ends equal row by row; bad names and a
 * missing confirmation change nothing.
 */
import { describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli.js';
import { diffTable, waitFor } from '../harness/compare.js';
import { freshDatabase } from '../harness/databases.js';
import { writeTwoNodeFile } from '../harness/desired-file.js';
import { startCli } from '../harness/processes.js';
import { sourceServer, targetServer } from '../harness/servers.js';


describe('pgconvey resync', () => {
  it('copies a damaged table again while the rest replicates', { timeout: 120_000 }, async () => {
    const [p, s] = [await freshDatabase(sourceServer(), 'resync_p'), await freshDatabase(targetServer(), 'resync_s')];
    const ddl = 'CREATE TABLE public.items (id int PRIMARY KEY, v text); CREATE TABLE public.other (id int PRIMARY KEY)';
    await p.query(ddl);
    await s.query(ddl);
    await p.query("INSERT INTO public.items SELECT g, 'v' || g FROM generate_series(1, 3000) g; INSERT INTO public.other SELECT generate_series(1, 10)");
    const file = writeTwoNodeFile();
    const env = { PGCONVEY_OLD_DSN: p.dsn, PGCONVEY_NEW_DSN: s.dsn };
    expect((await runCli(['apply', file, '--auto-approve'], { env })).code).toBe(0);
    const run = startCli(['run', file, '--log-format', 'json'], env);
    const state = async (t: string) => (await s.query('SELECT state FROM pgconvey.subscriber_table WHERE table_name = $1', [t])).rows[0]?.state;
    const [pc, sc] = [await p.connect(), await s.connect()];
    try {
      await waitFor('both tables copied', async () => (await state('items')) === 'ok' && (await state('other')) === 'ok', 60_000);
      await s.query("DELETE FROM public.items WHERE id % 7 = 0; UPDATE public.items SET v = 'damaged' WHERE id % 11 = 0");
      const found = await runCli(['compare', file, 'items'], { env });
      expect(found.code, found.stdout).toBe(1);

      const refused = await runCli(['resync', file, 'items'], { env });
      expect(refused.code).toBe(1);
      expect(refused.stdout).toContain('error confirmation_needed');
      const unknown = await runCli(['resync', file, 'nope', '--auto-approve'], { env });
      expect(unknown.code).toBe(1);
      expect(unknown.stdout).toContain('error table_not_replicated: table public.nope is not replicated');
      expect(await state('items')).toBe('ok');

      const resynced = await runCli(['resync', file, 'items', '--auto-approve'], { env });
      expect(resynced.code, resynced.stdout).toBe(0);
      expect(resynced.stdout).toContain('~ public.items on new_leaf (queue shop): ok → pending');
      await p.query("INSERT INTO public.items VALUES (5000, 'during the copy')");
      await waitFor('items copied again and equal', async () => {
        if ((await state('items')) !== 'ok') return false;
        const d = await diffTable(pc, sc, 'public.items', ['id']);
        return !d.missing.length && !d.extra.length;
      }, 60_000);
      expect((await runCli(['compare', file], { env })).code).toBe(0);
    } finally {
      await pc.end();
      await sc.end();
      await run.kill('SIGTERM');
    }
  });
});
