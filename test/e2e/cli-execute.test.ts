/**
 * `pgconvey execute` end to end (#17), with `pgconvey run` in the background
 * and a seeded writer on old: an ADD COLUMN with a default is executed and
 * replicated at its position (rows written right after it carry the new
 * column on both sides); run again it is skipped (exit 0); `run` is killed
 * with SIGKILL right after an execute and right after the worker applied one
 * (each script applies exactly once — a second run of these ALTERs would
 * fail); plan shows no changes. A script that cannot run on new holds the
 * queue with its error in `status` until the DBA fixes new; a direct ADD
 * COLUMN on old only holds that table alone (`held` in `status`, with table,
 * column and the ALTER to run, within seconds; the other table goes on), and
 * after the same ALTER on new everything converges; a
 * table created by execute is picked up by the next apply and copied. Both
 * sides are compared row by row (test/harness/exact.ts) at the end.
 * Replay with PGCONVEY_SEED=<seed>.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli.js';
import { waitFor } from '../harness/compare.js';
import { freshDatabase, type TestDatabase } from '../harness/databases.js';
import { writeTwoNodeFile } from '../harness/desired-file.js';
import { compareTable } from '../harness/exact.js';
import { startCli, type CliProcess } from '../harness/processes.js';
import { createRng, testSeed } from '../harness/random.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const SEED = testSeed();
const SCHEMA = `
  CREATE TABLE public.accounts (id int PRIMARY KEY, balance numeric(12,2) NOT NULL, note text, since text);
  CREATE TABLE public.events (id bigserial PRIMARY KEY, account_id int NOT NULL, amount numeric(12,2));`;

describe(`pgconvey execute end to end (seed ${SEED})`, () => {
  let run: CliProcess | undefined;
  afterAll(async () => {
    if (run && run.child.exitCode === null) console.log(`[cli-execute] last lines of pgconvey run:\n${run.lines.slice(-30).join('\n')}`);
    await run?.kill('SIGKILL');
  });

  it('replicates scripts at their position, once, across kill -9; holds on a failing script and on a direct ALTER until fixed', { timeout: 300_000 }, async () => {
    console.log(`[cli-execute] seed ${SEED}`);
    const [old, neu]: TestDatabase[] = [await freshDatabase(sourceServer(), 'cx_old'), await freshDatabase(targetServer(), 'cx_new')];
    await old.query(SCHEMA);
    await neu.query(SCHEMA);
    await old.query("INSERT INTO accounts SELECT g, g, 'seed', '2020-01-01' FROM generate_series(1, 500) g");
    const file = writeTwoNodeFile({ oldDsn: old.dsn, newDsn: neu.dsn, extra: 'daemons:\n  worker: { retry_delay: 200ms }' });
    const dir = mkdtempSync('/tmp/pgconvey-scripts-');
    const script = (name: string, sql: string) => {
      writeFileSync(`${dir}/${name}`, sql);
      return `${dir}/${name}`;
    };
    expect((await runCli(['apply', file, '--auto-approve'])).code).toBe(0);
    const startRun = async () => {
      run = startCli(['run', file, '--log-format', 'json']);
      await run.waitForLine(/"msg":"applying"/, 30_000);
    };
    await startRun();
    const status = async () => JSON.parse((await runCli(['status', file, '--json'])).stdout);
    await waitFor('the tables copied', async () => (await status()).queues[0].subscribers[0].tables.every((t: { state: string }) => t.state === 'ok'), 90_000, 250);

    // A seeded writer on old (columns every script keeps).
    const rng = createRng(SEED);
    let stop = false;
    let writes = 0;
    const w = await old.connect();
    const writer = (async () => {
      while (!stop) {
        const id = rng.int(1, 700);
        if (rng.chance(0.5)) await w.query('INSERT INTO accounts (id, balance) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET balance = EXCLUDED.balance', [id, rng.int(0, 9999)]);
        else if (rng.chance(0.8)) await w.query('INSERT INTO events (account_id, amount) VALUES ($1, $2)', [id, rng.int(1, 999)]);
        else await w.query('DELETE FROM accounts WHERE id = $1', [id]);
        writes++;
      }
    })();
    const more = async (n: number) => {
      const target = writes + n;
      await waitFor(`${n} more writes`, async () => writes >= target, 60_000);
    };
    await more(100);

    // ADD COLUMN with a default, rows right after it with the new column.
    const add = script('001_add_level.sql', 'ALTER TABLE accounts ADD COLUMN level integer NOT NULL DEFAULT 1;');
    const r1 = await runCli(['execute', add, '--file', file]);
    expect(r1.code, r1.stdout).toBe(0);
    expect(r1.stdout).toMatch(/^executed 001_add_level\.sql on old_root \(queue shop\); every subscriber runs it at this position/);
    await old.query('INSERT INTO accounts (id, balance, level) VALUES (9001, 1, 5)');
    await waitFor('the new column with its row on new', async () => (await neu.query('SELECT level FROM accounts WHERE id = 9001').catch(() => ({ rows: [] }))).rows[0]?.level === 5, 30_000);
    const again = await runCli(['execute', add, '--file', file]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/001_add_level\.sql was already applied on old_root \(queue shop\), skipping/);

    // kill -9 right after an execute, and right after the worker applied one.
    await more(100);
    const rename = script('002_rename_note.sql', 'ALTER TABLE accounts RENAME COLUMN note TO remark;');
    expect((await runCli(['execute', rename, '--file', file])).code).toBe(0);
    await run!.kill('SIGKILL');
    await startRun();
    await more(100);
    const retype = script('003_since_date.sql', 'ALTER TABLE accounts ALTER COLUMN since TYPE date USING since::date;');
    expect((await runCli(['execute', retype, '--file', file])).code).toBe(0);
    await run!.waitForLine(/"msg":"applied script".*003_since_date/, 30_000);
    await run!.kill('SIGKILL');
    await startRun();
    await more(100);
    const index = script('004_index.sql', 'CREATE INDEX accounts_level_idx ON accounts (level);');
    expect((await runCli(['execute', index, '--file', file])).code).toBe(0);
    await run!.waitForLine(/"msg":"applied script".*004_index/, 30_000);
    const plan = await runCli(['plan', file, '--detailed-exitcode']);
    expect(plan.code, plan.stdout).toBe(0);

    // A script that cannot run on new: the queue waits, status says why; after the fix it goes on.
    await old.query("CREATE TYPE public.tier AS ENUM ('free', 'paid')");
    const tier = script('005_tier.sql', 'ALTER TABLE accounts ADD COLUMN tier tier;');
    expect((await runCli(['execute', tier, '--file', file])).code).toBe(0);
    await old.query("UPDATE accounts SET tier = 'paid' WHERE id = 9001");
    await waitFor('status to show the failing script', async () => /script "005_tier\.sql" \(pgconvey execute\) failed on the subscriber: type "tier" does not exist/.test((await status()).queues[0].subscribers[0].last_error?.message ?? ''), 30_000, 250);
    const human = await runCli(['status', file]);
    expect(human.code).toBe(1);
    expect(human.stdout).toContain('script "005_tier.sql" (pgconvey execute) failed on the subscriber');
    await neu.query("CREATE TYPE public.tier AS ENUM ('free', 'paid')");
    await waitFor('the script applied after the fix', async () => (await neu.query("SELECT tier::text FROM accounts WHERE id = 9001").catch(() => ({ rows: [] }))).rows[0]?.tier === 'paid', 60_000);

    // A direct ADD COLUMN on old only: that table is held, status names table and column (and the ALTER) within seconds.
    await old.query('ALTER TABLE events ADD COLUMN fee numeric(6,2)');
    await more(50);
    type TableJson = { table: string; state: string; last_error: string | null };
    const eventsTable = async () => ((await status()).queues[0].subscribers[0].tables as TableJson[]).find((t) => t.table === 'public.events');
    await waitFor(
      'status to name events.fee',
      async () => {
        const t = await eventsTable();
        return t?.state === 'held' && /lacks the column\(s\) fee .*run on the subscriber: ALTER TABLE "public"\."events" ADD COLUMN "fee" numeric\(6,2\);/.test(t.last_error ?? '');
      },
      30_000,
      250,
    );
    // The other table goes on meanwhile.
    await old.query('INSERT INTO accounts (id, balance) VALUES (9002, 2) ON CONFLICT (id) DO UPDATE SET balance = 2');
    await waitFor('accounts replicating while events is held', async () => Number((await neu.query('SELECT balance FROM accounts WHERE id = 9002')).rows[0]?.balance) === 2, 30_000);
    const heldStatus = await runCli(['status', file]);
    expect(heldStatus.code).toBe(1);
    expect(heldStatus.stdout).toMatch(/public\.events.*held/);
    // Logged once, not at every batch.
    expect(run!.lines.filter((l) => l.includes('"level":"warn"') && l.includes('"msg":"table held')).length).toBe(1);
    await neu.query('ALTER TABLE events ADD COLUMN fee numeric(6,2)');
    await waitFor('events ok again', async () => (await eventsTable())?.state === 'ok', 60_000, 250);
    stop = true;
    await writer;
    await w.end();
    await old.query('INSERT INTO events (account_id, amount, fee) VALUES (-1, 1, 0.5)');
    await waitFor('new caught up', async () => (await neu.query('SELECT count(*)::int AS n FROM events WHERE account_id = -1')).rows[0].n === 1, 60_000);

    const [p, s] = [await old.connect(), await neu.connect()];
    try {
      for (const table of ['accounts', 'events']) {
        const d = await compareTable(p, s, 'public', table);
        expect({ ...d, table }).toEqual({ ...d, table, missing: [], extra: [], subscriberRows: d.providerRows });
      }
      const applied = await s.query('SELECT script_name FROM pgconvey.ddl_applied ORDER BY script_name');
      expect(applied.rows.map((r) => r.script_name)).toEqual(['001_add_level.sql', '002_rename_note.sql', '003_since_date.sql', '004_index.sql', '005_tier.sql']);
    } finally {
      await Promise.all([p.end(), s.end()]);
    }
    // A new table matching the include glob, made by execute on both sides (no subscriber needed yet: the CREATE runs there too).
    const create = script('006_extra.sql', 'CREATE TABLE public.extra (id int PRIMARY KEY, v text);');
    expect((await runCli(['execute', create, '--file', file])).code).toBe(0);
    await old.query("INSERT INTO extra SELECT g, 'x' || g FROM generate_series(1, 100) g");
    await waitFor('extra made on new', async () => (await neu.query("SELECT to_regclass('public.extra') IS NOT NULL AS ok")).rows[0].ok, 60_000);
    // The next apply captures and copies it; the direct ALTER's capture is recorded again too. Then nothing is left to do.
    const picked = await runCli(['apply', file, '--auto-approve']);
    expect(picked.code, picked.stdout).toBe(0);
    expect(picked.stdout).toMatch(/capture_table.*extra/);
    await old.query("UPDATE extra SET v = 'y' WHERE id <= 10");
    await waitFor('extra copied and merged', async () => (await status()).queues[0].subscribers[0].tables.every((t: { state: string }) => t.state === 'ok'), 90_000, 250);
    await old.query("INSERT INTO extra VALUES (-1, 'marker')");
    await waitFor('extra caught up', async () => (await neu.query('SELECT count(*)::int AS n FROM extra WHERE id = -1')).rows[0].n === 1, 60_000);
    const [p2, s2] = [await old.connect(), await neu.connect()];
    try {
      const d = await compareTable(p2, s2, 'public', 'extra');
      expect(d).toEqual({ ...d, missing: [], extra: [], subscriberRows: d.providerRows });
    } finally {
      await Promise.all([p2.end(), s2.end()]);
    }
    const final = await runCli(['plan', file, '--detailed-exitcode']);
    expect(final.code, final.stdout).toBe(0);
  });
});
