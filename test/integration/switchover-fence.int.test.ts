/**
 * Fences and half-done switchovers on real servers (issue 11, findings 8 and
 * 10): a switchover killed in its drain leaves both nodes fenced, `status`
 * exits 1 naming each fence and how to finish or undo it, and running the
 * switchover again finishes it; a failed switchover is undone by switching to
 * the node it came from, and a failed switch back by switching forward again
 * (never "Nothing to do" with both nodes read-only); a session that sets
 * `default_transaction_read_only = off` still cannot write a fenced table;
 * a capture trigger disabled by a table owner is an error of `plan` and a
 * problem of `status`.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli.js';
import { waitFor } from '../harness/compare.js';
import { freshDatabase, type TestDatabase } from '../harness/databases.js';
import { writeTwoNodeFile } from '../harness/desired-file.js';
import { startCli, type CliProcess } from '../harness/processes.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const SCHEMA = `
  CREATE TABLE public.customers (id serial PRIMARY KEY, name text NOT NULL);
  CREATE TABLE public.orders (id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES public.customers, total int NOT NULL);`;

interface Setup {
  old: TestDatabase;
  neu: TestDatabase;
  file: string;
  env: NodeJS.ProcessEnv;
  run: CliProcess;
}

async function setUp(prefix: string): Promise<Setup> {
  const [old, neu] = [await freshDatabase(sourceServer(), `${prefix}_o`), await freshDatabase(targetServer(), `${prefix}_n`)];
  await old.query(SCHEMA);
  await neu.query(SCHEMA);
  await old.query("INSERT INTO public.customers (name) SELECT 'c' || g FROM generate_series(1, 20) g; INSERT INTO public.orders (customer_id, total) SELECT 1 + g % 20, g FROM generate_series(1, 100) g");
  const file = writeTwoNodeFile({ root: 'old', leaf: 'new', sequences: ['public.*'] });
  const env = { PGCONVEY_OLD_DSN: old.dsn, PGCONVEY_NEW_DSN: neu.dsn };
  const applied = await runCli(['apply', file, '--auto-approve'], { env, timeoutMs: 60_000 });
  expect(applied.code, applied.stdout + applied.stderr).toBe(0);
  const run = startCli(['run', file], env);
  await waitFor('every table ok', async () => {
    const { rows } = await neu.query<{ n: number }>("SELECT count(*) FILTER (WHERE state = 'ok')::int AS n FROM pgconvey.subscriber_table WHERE queue_name = 'shop'");
    return rows[0]!.n === 2;
  }, 60_000);
  return { old, neu, file, env, run };
}

async function status(file: string, env: NodeJS.ProcessEnv): Promise<{ code: number; problems: string[]; text: string }> {
  const r = await runCli(['status', file, '--json'], { env, timeoutMs: 90_000 });
  const human = await runCli(['status', file], { env, timeoutMs: 90_000 });
  return { code: r.code, problems: JSON.parse(r.stdout).problems, text: human.stdout };
}

/** The SQLSTATE a statement fails with on a new session, or null when it succeeds. */
async function writeError(db: TestDatabase, sql: string): Promise<string | null> {
  try {
    await db.query(sql);
    return null;
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

async function replicaWrite(db: TestDatabase, sql: string): Promise<void> {
  const c = await db.connect();
  try {
    await c.query('SET default_transaction_read_only = off');
    await c.query(`BEGIN; SET LOCAL session_replication_role = replica; ${sql}; COMMIT`);
  } finally {
    await c.end();
  }
}

describe('fences and half-done switchovers', () => {
  it('a switchover killed in its drain shows in status and finishes when run again', { timeout: 600_000 }, async () => {
    const { old, neu, file, env, run } = await setUp('sof');
    // A session on NEW that survives the fence (its application_name is pgconvey's) holds the subscription's row: the next batch waits.
    const holder = new pg.Client({ ...neu.config, application_name: 'pgconvey:test-holder' });
    await holder.connect();
    let switchover: CliProcess | null = null;
    try {
      await holder.query("BEGIN; SELECT 1 FROM pgconvey.subscription WHERE queue_name = 'shop' FOR UPDATE");
      await old.query("UPDATE public.customers SET name = 'blocked' WHERE id = 1");
      switchover = startCli(['switchover', file, '--to', 'new', '--auto-approve', '--max-lag', '1min'], env);
      await switchover.waitForLine(/✓ fence /, 60_000);
      await new Promise((r) => setTimeout(r, 200)); // inside the drain, which waits on the blocked batch
      await switchover.kill('SIGKILL');

      const half = await status(file, env);
      expect(half.code, half.text).toBe(1);
      const fences = half.problems.filter((p) => p.includes('stopped half way'));
      expect(fences.length, half.problems.join('\n')).toBe(2);
      expect(fences.join('\n')).toMatch(/old \(.*\) is fenced since \d{4}-\d\d-\d\dT/);
      expect(fences.join('\n')).toMatch(/new \(.*\) is fenced since \d{4}-\d\d-\d\dT/);
      expect(fences[0]).toContain(`finish it with \`pgconvey switchover ${file} --to new\``);
      expect(fences[0]).toContain(`undo it with \`pgconvey switchover ${file} --to old\``);
      expect(half.text).not.toContain('All replication is running');
      // Both refuse writes meanwhile, even a session that lifts read-only for itself.
      for (const db of [old, neu]) {
        expect(await writeError(db, "SET default_transaction_read_only = off; INSERT INTO public.customers (name) VALUES ('sneaky')")).toBe('25006');
        expect(await writeError(db, 'SET default_transaction_read_only = off; TRUNCATE public.orders')).toBe('25006');
      }

      await holder.query('COMMIT');
      const again = await runCli(['switchover', file, '--to', 'new', '--auto-approve'], { env, timeoutMs: 120_000 });
      expect(again.code, again.stdout).toBe(0);
      expect(again.stdout).toContain('resuming: writes already fenced');
      const window = Number(/Writes unavailable: (\d+) ms/.exec(again.stdout)?.[1]);
      // Measured from the first run's fence, not from this run's start.
      expect(window).toBeGreaterThan(200);
      expect((await neu.query("SELECT name FROM public.customers WHERE id = 1")).rows[0].name).toBe('blocked');
      expect(await writeError(neu, "INSERT INTO public.customers (name) VALUES ('on new')")).toBeNull();
      expect(await writeError(old, "SET default_transaction_read_only = off; UPDATE public.customers SET name = 'x' WHERE id = 2")).toBe('25006');
      // The workers still apply on a fenced node (replica mode): OLD's fence is standby, not a problem.
      const done = await status(file, env);
      expect(done.problems.filter((p) => /fence|half way/.test(p)), done.problems.join('\n')).toEqual([]);
      expect(done.text).toMatch(/fenced since .* standby: "new" takes writes/);
    } finally {
      await switchover?.kill('SIGKILL');
      await holder.end().catch(() => undefined);
      await run.kill('SIGTERM');
    }
  });

  it('a failed switchover is undone by switching back; a failed switch back by switching forward', { timeout: 600_000 }, async () => {
    const { old, neu, file, env, run } = await setUp('sou');
    try {
      // A row written on NEW before the switchover: the counts differ, the switchover stops with both fenced.
      await replicaWrite(neu, "INSERT INTO public.customers (id, name) VALUES (1000, 'stray')");
      const failed = await runCli(['switchover', file, '--to', 'new', '--auto-approve'], { env, timeoutMs: 120_000 });
      expect(failed.code, failed.stdout).toBe(1);
      expect(failed.stdout).toContain('error switchover_counts_differ');
      expect(failed.stdout).toContain(`undo it with \`pgconvey switchover ${file} --to old\``);
      expect((await status(file, env)).code).toBe(1);
      const undone = await runCli(['switchover', file, '--to', 'old', '--auto-approve'], { env, timeoutMs: 60_000 });
      expect(undone.code, undone.stdout).toBe(0);
      expect(undone.stdout).toContain('Undone:');
      expect(await writeError(old, "INSERT INTO public.customers (name) VALUES ('old again')")).toBeNull();
      expect(await writeError(neu, "INSERT INTO public.customers (name) VALUES ('new is standby')")).toBe('25006');

      await replicaWrite(neu, 'DELETE FROM public.customers WHERE id = 1000');
      const forward = await runCli(['switchover', file, '--to', 'new', '--reverse', '--auto-approve'], { env, timeoutMs: 120_000 });
      expect(forward.code, forward.stdout).toBe(0);
      // The switch back fails (a stray row on OLD): both fenced. Switching forward again undoes it — never "Nothing to do".
      await replicaWrite(old, "INSERT INTO public.customers (id, name) VALUES (2000, 'stray')");
      const back = await runCli(['switchover', file, '--to', 'old', '--auto-approve'], { env, timeoutMs: 120_000 });
      expect(back.code, back.stdout).toBe(1);
      expect(back.stdout).toContain('error switchover_counts_differ');
      const both = await status(file, env);
      expect(both.code).toBe(1);
      expect(both.problems.join('\n')).toMatch(/a switchover to old stopped half way: new/);
      const forwardAgain = await runCli(['switchover', file, '--to', 'new', '--auto-approve'], { env, timeoutMs: 60_000 });
      expect(forwardAgain.code, forwardAgain.stdout).toBe(0);
      expect(forwardAgain.stdout).not.toContain('Nothing to do');
      expect(forwardAgain.stdout).toContain('Undone:');
      expect(await writeError(neu, "INSERT INTO public.customers (name) VALUES ('new again')")).toBeNull();
      expect(await writeError(old, "SET default_transaction_read_only = off; INSERT INTO public.customers (name) VALUES ('old is standby')")).toBe('25006');
    } finally {
      await run.kill('SIGTERM');
    }
  });

  it('a disabled capture trigger is an error of plan and a problem of status', { timeout: 400_000 }, async () => {
    const { old, file, env, run } = await setUp('sot');
    try {
      await waitFor('status healthy', async () => (await status(file, env)).code === 0, 30_000, 200);
      const { rows } = await old.query<{ name: string }>("SELECT tgname AS name FROM pg_trigger WHERE tgrelid = 'public.orders'::regclass AND tgname LIKE 'pgconvey_capture_%'");
      await old.query(`ALTER TABLE public.orders DISABLE TRIGGER ${rows[0]!.name}`);
      const plan = await runCli(['plan', file], { env });
      expect(plan.code, plan.stdout).not.toBe(0);
      expect(plan.stdout).toContain('capture_trigger_disabled');
      expect(plan.stdout).toContain(`ENABLE TRIGGER ${rows[0]!.name}`);
      const s = await status(file, env);
      expect(s.code).toBe(1);
      expect(s.problems.join('\n')).toContain(`the capture row trigger ${rows[0]!.name} of "public"."orders" on old is disabled`);
    } finally {
      await run.kill('SIGTERM');
    }
  });
});
