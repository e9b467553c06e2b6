/**
 * `pgconvey status` on real databases: nothing running → exit 1 naming the
 * missing ticker and worker; a worker that cannot reach its provider → its
 * last error shown (kept on the subscriber) and "backing off" with its
 * process, not "start pgconvey run"; with `run` going → healthy, exit 0, the
 * error gone once a batch is applied; a second worker process beside it →
 * its own error, exit 1. Bad --node → clear error.
 */
import { describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli.js';
import { waitFor } from '../harness/compare.js';
import { freshDatabase } from '../harness/databases.js';
import { writeTwoNodeFile } from '../harness/desired-file.js';
import { startCli } from '../harness/processes.js';
import { sourceServer, targetServer } from '../harness/servers.js';

describe('pgconvey status', () => {
  it('shows what runs, what does not, and the last error', { timeout: 120_000 }, async () => {
    const [p, s] = [await freshDatabase(sourceServer(), 'status_p'), await freshDatabase(targetServer(), 'status_s')];
    await p.query('CREATE TABLE public.t (id int PRIMARY KEY); INSERT INTO public.t SELECT generate_series(1, 100)');
    await s.query('CREATE TABLE public.t (id int PRIMARY KEY)');
    const file = writeTwoNodeFile();
    const env = { PGCONVEY_OLD_DSN: p.dsn, PGCONVEY_NEW_DSN: s.dsn };
    expect((await runCli(['apply', file, '--auto-approve'], { env })).code).toBe(0);
    const status = async () => {
      const r = await runCli(['status', file, '--json'], { env });
      return { code: r.code, json: JSON.parse(r.stdout) };
    };

    const idle = await status();
    expect(idle.code).toBe(1);
    expect(idle.json.problems).toEqual(['queue "shop": no ticker runs on old_root; start pgconvey run', 'queue "shop": no worker applies to new_leaf; start pgconvey run']);
    expect(idle.json.queues[0].subscribers[0].tables).toEqual([expect.objectContaining({ table: 'public.t', state: 'pending' })]);

    // A worker whose provider refuses connections records why on the subscriber.
    const closedPort = `${p.dsn.replace(/port=\d+/, 'port=1')}`;
    const broken = startCli(['engine', 'worker', '--provider', closedPort, '--subscriber', s.dsn, '--queue', 'shop', '--consumer', 'new_leaf']);
    try {
      await waitFor('the last error to show', async () => (await status()).json.queues[0].subscribers[0].last_error !== null, 30_000, 200);
      const failing = await status();
      expect(failing.json.queues[0].subscribers[0].last_error.message).toMatch(/connection refused/);
      // Backing off, with its process and error: not "start pgconvey run".
      await waitFor('the back-off to show', async () => (await status()).json.problems.some((p: string) => p.includes('backing off')), 30_000, 200);
      const backingOff = await status();
      expect(backingOff.json.problems.join('\n')).toMatch(/the worker of new_leaf is backing off in process [^ ]+:\d+ .*after: .*connection refused/);
      expect(backingOff.json.problems.join('\n')).not.toContain('no worker applies');
      const human = await runCli(['status', file], { env });
      expect(human.stdout).toMatch(/last error .* ago: .*connection refused/);
      // Retrying against a provider that is down leaks no subscriber connection (the copier keeps one).
      const copySessions = await s.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pgconvey:copy'");
      expect(copySessions.rows[0].n).toBeLessThanOrEqual(1);
    } finally {
      await broken.kill('SIGTERM');
    }
    expect(broken.lines.join('\n')).toContain('shutting down');

    const run = startCli(['run', file], env);
    try {
      await waitFor('healthy, the table copied, the error gone', async () => {
        const r = await status();
        const sub = r.json.queues[0].subscribers[0];
        return r.code === 0 && r.json.healthy && sub.worker_running && sub.last_error === null && sub.tables[0].state === 'ok';
      }, 60_000, 200);
      const human = await runCli(['status', file], { env });
      expect(human.code).toBe(0);
      expect(human.stdout).toMatch(/ticker running/);
      expect(human.stdout).toMatch(/worker running {2}lag/);
      expect(human.stdout).toContain('All replication is running.');

      // A second worker process for the same subscription cannot take its lock: its error is its own.
      const second = startCli(['engine', 'worker', '--provider', p.dsn, '--subscriber', s.dsn, '--queue', 'shop', '--consumer', 'new_leaf']);
      try {
        await waitFor('the second process to show', async () => (await status()).json.problems.some((x: string) => x.includes('also tries to run it')), 30_000, 200);
        const both = await status();
        expect(both.code).toBe(1);
        expect(both.json.queues[0].subscribers[0].worker_running).toBe(true);
        expect(both.json.problems.join('\n')).toMatch(/the worker of new_leaf runs, and process [^ ]+:\d+ .* also tries to run it and fails/);
      } finally {
        await second.kill('SIGTERM');
      }
    } finally {
      await run.kill('SIGTERM');
    }

    const bad = await runCli(['status', file, '--node', 'nope'], { env });
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain('error unknown_node: no node "nope"');
  });
});
