/**
 * The declarative loop end to end on real databases (old → new): apply
 * converges (plan again says "No changes." with exit 0, a second apply does
 * nothing), a new table matching include is planned, applied and its rows
 * replicate through the worker, and a destructive change needs consent.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli.js';
import { diffTable, waitFor } from '../harness/compare.js';
import { freshDatabase } from '../harness/databases.js';
import { startCli } from '../harness/processes.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const FILE = 'test/fixtures/scenarios/shop.yaml';

describe('pgconvey apply', () => {
  it('converges, picks up new tables, and replicates them', { timeout: 120_000 }, async () => {
    const [pdb, sdb] = [await freshDatabase(sourceServer(), 'apply_p'), await freshDatabase(targetServer(), 'apply_s')];
    const schema = `
      CREATE TABLE public.orders (id bigserial PRIMARY KEY, total numeric);
      CREATE TABLE public.customers (id int PRIMARY KEY, name text);
      CREATE TABLE public.audit (event_id bigint NOT NULL, body text);`;
    await pdb.query(schema);
    await sdb.query(schema);
    await pdb.query("INSERT INTO public.orders (total) SELECT g FROM generate_series(1, 500) g; INSERT INTO public.customers SELECT g, 'c' || g FROM generate_series(1, 200) g");
    const env = { PGCONVEY_OLD_DSN: pdb.dsn, PGCONVEY_NEW_DSN: sdb.dsn };

    const first = await runCli(['apply', FILE, '--auto-approve'], { env });
    expect(first.code, first.stdout + first.stderr).toBe(0);
    expect(first.stdout).toContain('+ capture_table:old_root:public.orders … done');
    expect(first.stdout).toContain('Apply complete: 11 action(s).');

    const again = await runCli(['plan', FILE, '--detailed-exitcode'], { env });
    expect(again.code, again.stdout).toBe(0);
    expect(again.stdout).toContain(`No changes. The databases match ${FILE}.`);
    const second = await runCli(['apply', FILE, '--auto-approve'], { env });
    expect(second.code).toBe(0);
    expect(second.stdout).not.toContain('Apply complete');

    // A new table matching include shows up, applies, and converges.
    await pdb.query("CREATE TABLE public.invoices (id int PRIMARY KEY, amount numeric); INSERT INTO public.invoices SELECT g, g * 1.5 FROM generate_series(1, 300) g");
    await sdb.query('CREATE TABLE public.invoices (id int PRIMARY KEY, amount numeric)');
    const next = await runCli(['plan', FILE, '--detailed-exitcode'], { env });
    expect(next.code).toBe(2);
    expect(next.stdout).toContain('Plan: 2 to add, 0 to change, 0 to remove.');
    expect((await runCli(['apply', FILE, '--auto-approve'], { env })).code).toBe(0);
    expect((await runCli(['plan', FILE, '--detailed-exitcode'], { env })).code).toBe(0);

    // A column added (subscriber first, then provider) is planned as a new capture of the table, and converges.
    await sdb.query('ALTER TABLE public.customers ADD COLUMN email text');
    await pdb.query('ALTER TABLE public.customers ADD COLUMN email text');
    const altered = await runCli(['plan', FILE, '--detailed-exitcode'], { env });
    expect(altered.code, altered.stdout).toBe(2);
    expect(altered.stdout).toContain('~ capture_table public.customers');
    expect(altered.stdout).toContain('its columns changed from (id, name) to (id, name, email)');
    expect((await runCli(['apply', FILE, '--auto-approve'], { env })).code).toBe(0);
    expect((await runCli(['plan', FILE, '--detailed-exitcode'], { env })).code).toBe(0);
    await pdb.query("UPDATE public.customers SET email = 'c' || id || '@example.com' WHERE id <= 5");

    // The low-level ticker and worker replicate what apply set up.
    const ticker = startCli(['engine', 'ticker', '--db', pdb.dsn, '--queue', 'shop']);
    const worker = startCli(['engine', 'worker', '--provider', pdb.dsn, '--subscriber', sdb.dsn, '--queue', 'shop', '--consumer', 'new_leaf']);
    try {
      await pdb.query('INSERT INTO public.invoices VALUES (1000, 1)');
      const p = await pdb.connect();
      const s = await sdb.connect();
      try {
        await waitFor('every table copied and in sync', async () => {
          for (const [t, k] of [['public.orders', ['id']], ['public.customers', ['id']], ['public.invoices', ['id']], ['public.audit', ['event_id']]] as const) {
            const d = await diffTable(p, s, t, [...k]);
            if (d.missing.length || d.extra.length) return false;
          }
          return true;
        }, 60_000);
      } finally {
        await p.end();
        await s.end();
      }
    } finally {
      await worker.kill('SIGTERM');
      await ticker.kill('SIGTERM');
    }

    // Settings changed in the file are applied to the existing queue.
    const { writeFileSync: write, mkdtempSync: tmp } = await import('node:fs');
    const tuned = `${tmp('/tmp/pgconvey-apply-')}/shop.yaml`;
    write(tuned, `${readFileSync(FILE, 'utf8')}daemons:\n  ticker: { max_lag: 250ms, idle_period: 10s }\n`);
    const retune = await runCli(['plan', tuned, '--detailed-exitcode'], { env });
    expect(retune.code, retune.stdout).toBe(2);
    expect(retune.stdout).toContain('~ configure_queue shop');
    expect((await runCli(['apply', tuned, '--auto-approve'], { env })).code).toBe(0);
    expect((await runCli(['plan', tuned, '--detailed-exitcode'], { env })).code).toBe(0);
    expect((await pdb.query("SELECT ticker_max_lag::text AS l FROM pgconvey.queue WHERE queue_name = 'shop'")).rows[0].l).toBe('00:00:00.25');

    // Removing a table from the file is destructive: refused without consent.
    const narrowed = readFileSync(FILE, 'utf8').replace('exclude: ["public.tmp_*"]', 'exclude: ["public.tmp_*", "public.invoices"]');
    const { writeFileSync, mkdtempSync } = await import('node:fs');
    const dir = mkdtempSync('/tmp/pgconvey-apply-');
    writeFileSync(`${dir}/shop.yaml`, narrowed);
    const refused = await runCli(['apply', `${dir}/shop.yaml`, '--auto-approve'], { env });
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain('error destructive_not_allowed');
    const allowed = await runCli(['apply', `${dir}/shop.yaml`, '--auto-approve', '--allow-destructive'], { env });
    expect(allowed.code, allowed.stdout).toBe(0);
    expect((await runCli(['plan', `${dir}/shop.yaml`, '--detailed-exitcode'], { env })).code).toBe(0);
  });

  it('asks for consent before copying into a subscriber table that holds rows', { timeout: 60_000 }, async () => {
    const [pdb, sdb] = [await freshDatabase(sourceServer(), 'occ_p'), await freshDatabase(targetServer(), 'occ_s')];
    const schema = 'CREATE TABLE public.orders (id bigserial PRIMARY KEY, total numeric); CREATE TABLE public.audit (event_id bigint NOT NULL, body text)';
    await pdb.query(schema);
    await sdb.query(schema);
    await sdb.query('INSERT INTO public.orders (total) VALUES (1), (2); ANALYZE public.orders');
    const env = { PGCONVEY_OLD_DSN: pdb.dsn, PGCONVEY_NEW_DSN: sdb.dsn };
    const refused = await runCli(['apply', FILE, '--auto-approve'], { env });
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain('+ add_subscriber_table public.orders (destructive)');
    expect(refused.stdout).toContain('the copy replaces its rows');
    expect(refused.stdout).toContain('error destructive_not_allowed');
    expect((await sdb.query("SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'pgconvey'")).rows[0].n).toBe(0);
    expect((await runCli(['apply', FILE, '--auto-approve', '--allow-destructive'], { env })).code).toBe(0);
  });
});
