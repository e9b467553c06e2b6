/**
 * `pgconvey compare` as a user runs it, on a setup made by `apply` and kept in
 * step by the ticker and worker processes: exit 0 and a ✓ per table when
 * equal, the same as JSON; exit 1 naming the missing key after a row is
 * deleted on the subscriber; exit 1 with a hint for an unknown table.
 * After `switchover --reverse` with fresh writes on the new node, compare
 * follows the reverse queue (new → old) and exits 0; after a switchover
 * without reverse replication it refuses with compare_after_switchover.
 */
import { describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli.js';
import { diffTable, waitFor } from '../harness/compare.js';
import { freshDatabase } from '../harness/databases.js';
import { writeTwoNodeFile } from '../harness/desired-file.js';
import { startCli } from '../harness/processes.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const FILE = writeTwoNodeFile();

describe('pgconvey compare', () => {
  it('exits 0 when equal, 1 naming the key that differs, 1 for an unknown table', { timeout: 120_000 }, async () => {
    const [pdb, sdb] = [await freshDatabase(sourceServer(), 'cmp_e2e_p'), await freshDatabase(targetServer(), 'cmp_e2e_s')];
    const schema = `
      CREATE TABLE public.orders (id bigserial PRIMARY KEY, total numeric);
      CREATE TABLE public.customers (id int PRIMARY KEY, name text);`;
    await pdb.query(schema);
    await sdb.query(schema);
    await pdb.query("INSERT INTO public.orders (total) SELECT g FROM generate_series(1, 3000) g; INSERT INTO public.customers SELECT g, 'c' || g FROM generate_series(1, 200) g");
    const env = { PGCONVEY_OLD_DSN: pdb.dsn, PGCONVEY_NEW_DSN: sdb.dsn };
    const applied = await runCli(['apply', FILE, '--auto-approve'], { env });
    expect(applied.code, applied.stdout + applied.stderr).toBe(0);

    const ticker = startCli(['engine', 'ticker', '--db', pdb.dsn, '--queue', 'shop']);
    const worker = startCli(['engine', 'worker', '--provider', pdb.dsn, '--subscriber', sdb.dsn, '--queue', 'shop', '--consumer', 'new_leaf']);
    try {
      await waitFor(
        'both tables copied',
        async () => (await sdb.query("SELECT count(*) FILTER (WHERE state = 'ok') AS ok FROM pgconvey.subscriber_table")).rows[0].ok === '2',
        60_000,
      );

      const equal = await runCli(['compare', FILE, '--chunk-rows', '1000'], { env });
      expect(equal.code, equal.stdout + equal.stderr).toBe(0);
      expect(equal.stdout).toMatch(/✓ public\.orders {2}3,000 rows {2}\(\d+\.\d s, writers paused \d+ ms[^)]*\)/);
      expect(equal.stdout).toContain('✓ public.customers  200 rows');
      expect(equal.stdout).toContain('Equal: 2 tables equal, 0 different.');

      const json = await runCli(['compare', FILE, '--json'], { env });
      expect(json.code, json.stderr).toBe(0);
      const parsed = JSON.parse(json.stdout);
      expect(parsed).toMatchObject({ format_version: 1, file: FILE, equal: true });
      expect(parsed.tables.map((t: { name: string; equal: boolean; provider_rows: number }) => [t.name, t.equal, t.provider_rows])).toEqual([
        ['public.customers', true, 200],
        ['public.orders', true, 3000],
      ]);
      expect(parsed.tables[1]).toMatchObject({ queue: 'shop', node: 'new_leaf', subscriber_rows: 3000, chunks: 1, differing_ranges: [], key_columns: ['id'] });

      await sdb.query('DELETE FROM public.orders WHERE id = 1234');
      const [p, s] = [await pdb.connect(), await sdb.connect()];
      expect((await diffTable(p, s, 'public.orders', ['id'])).missing).toHaveLength(1);
      await Promise.all([p.end(), s.end()]);
      const differ = await runCli(['compare', FILE, 'orders', '--chunk-rows', '1000'], { env });
      expect(differ.code, differ.stdout + differ.stderr).toBe(1);
      expect(differ.stdout).toContain('✗ public.orders  provider 3,000 rows, subscriber 2,999');
      expect(differ.stdout).toContain('from (id)=(1234) to (id)=(1234): 1 missing on the subscriber');
      expect(differ.stdout).toContain('missing (id)=(1234)');
      expect(differ.stdout).toContain('Different: 0 tables equal, 1 different.');
      const differJson = JSON.parse((await runCli(['compare', FILE, 'public.orders', '--json'], { env })).stdout);
      expect(differJson.equal).toBe(false);
      expect(differJson.tables[0].differing_ranges).toEqual([expect.objectContaining({ from: { id: '1234' }, to: { id: '1234' }, missing: [{ id: '1234' }], missing_count: 1 })]);

      const unknown = await runCli(['compare', FILE, 'public.ordrs'], { env });
      expect(unknown.code).toBe(1);
      expect(unknown.stdout).toContain('error unknown_table: table public.ordrs does not exist on the root');
      expect(unknown.stdout).toContain('hint: did you mean public.orders?');
    } finally {
      await worker.kill('SIGTERM');
      await ticker.kill('SIGTERM');
    }
  });

  it('compares along the reverse queue after a switchover, and refuses without one', { timeout: 240_000 }, async () => {
    const [pdb, sdb] = [await freshDatabase(sourceServer(), 'cmp_so_p'), await freshDatabase(targetServer(), 'cmp_so_s')];
    const schema = `
      CREATE TABLE public.orders (id bigint PRIMARY KEY, total numeric);
      CREATE TABLE public.customers (id int PRIMARY KEY, name text);`;
    await pdb.query(schema);
    await sdb.query(schema);
    await pdb.query("INSERT INTO public.orders SELECT g, g FROM generate_series(1, 3000) g; INSERT INTO public.customers SELECT g, 'c' || g FROM generate_series(1, 200) g");
    const env = { PGCONVEY_OLD_DSN: pdb.dsn, PGCONVEY_NEW_DSN: sdb.dsn };
    const applied = await runCli(['apply', FILE, '--auto-approve'], { env });
    expect(applied.code, applied.stdout + applied.stderr).toBe(0);
    const processes = [
      startCli(['engine', 'ticker', '--db', pdb.dsn, '--queue', 'shop']),
      startCli(['engine', 'worker', '--provider', pdb.dsn, '--subscriber', sdb.dsn, '--queue', 'shop', '--consumer', 'new_leaf']),
    ];
    try {
      await waitFor(
        'both tables copied',
        async () => (await sdb.query("SELECT count(*) FILTER (WHERE state = 'ok') AS ok FROM pgconvey.subscriber_table")).rows[0].ok === '2',
        60_000,
      );
      const forward = await runCli(['switchover', FILE, '--to', 'new_leaf', '--reverse', '--auto-approve'], { env, timeoutMs: 120_000 });
      expect(forward.code, forward.stdout + forward.stderr).toBe(0);
      processes.push(startCli(['engine', 'ticker', '--db', sdb.dsn, '--queue', 'shop_reverse']));
      const reverseWorker = startCli(['engine', 'worker', '--provider', sdb.dsn, '--subscriber', pdb.dsn, '--queue', 'shop_reverse', '--consumer', 'old_root']);
      processes.push(reverseWorker);
      // Fresh writes on the new node: not differences, they travel to the old one.
      await sdb.query("INSERT INTO public.orders SELECT g, g FROM generate_series(3001, 3100) g; UPDATE public.customers SET name = 'new ' || id WHERE id % 3 = 0; DELETE FROM public.orders WHERE id % 101 = 0");

      // …and more of them all through compare, as the application goes on writing there.
      let writing = true;
      let written = 0;
      const writer = (async () => {
        const c = await sdb.connect();
        try {
          for (let id = 10_000; writing; id++) {
            await c.query('BEGIN');
            await c.query('INSERT INTO public.orders VALUES ($1, $2)', [id, id]);
            await c.query('UPDATE public.customers SET name = $2 WHERE id = $1', [1 + (id % 200), `w${id}`]);
            await c.query('COMMIT');
            written++;
          }
        } finally {
          await c.end();
        }
      })();
      let compared: Awaited<ReturnType<typeof runCli>>;
      try {
        await waitFor('the writer on new under way', async () => written > 20);
        compared = await runCli(['compare', FILE, '--json'], { env });
      } finally {
        writing = false;
        await writer;
      }
      expect(compared.code, compared.stdout + compared.stderr).toBe(0);
      const parsed = JSON.parse(compared.stdout);
      expect(parsed.equal).toBe(true);
      expect(parsed.tables.map((t: Record<string, unknown>) => [t.name, t.queue, t.direction, t.node, t.equal])).toEqual([
        ['public.customers', 'shop_reverse', 'reverse', 'old_root', true],
        ['public.orders', 'shop_reverse', 'reverse', 'old_root', true],
      ]);
      expect(parsed.tables[1].provider_rows).toBeGreaterThan(3100 - 30);
      const human = await runCli(['compare', FILE, 'orders'], { env });
      expect(human.code, human.stdout + human.stderr).toBe(0);
      expect(human.stdout).toContain('queue shop_reverse (reverse replication after the switchover)');
      const [p, s] = [await pdb.connect(), await sdb.connect()];
      try {
        for (const t of ['public.orders', 'public.customers']) {
          const d = await diffTable(s, p, t, ['id']);
          expect(d, t).toEqual({ ...d, missing: [], extra: [], subscriberRows: d.providerRows });
        }
      } finally {
        await Promise.all([p.end(), s.end()]);
      }

      // Back to the old node, then over again without reverse replication: nothing keeps the two at one position.
      await reverseWorker.kill('SIGTERM');
      const back = await runCli(['switchover', FILE, '--to', 'old_root', '--auto-approve', '--verify', 'none'], { env, timeoutMs: 120_000 });
      expect(back.code, back.stdout + back.stderr).toBe(0);
      const again = await runCli(['compare', FILE], { env });
      expect(again.code, again.stdout + again.stderr).toBe(0);
      expect(again.stdout).toContain('queue shop: ');
      const noReverse = await runCli(['switchover', FILE, '--to', 'new_leaf', '--auto-approve'], { env, timeoutMs: 120_000 });
      expect(noReverse.code, noReverse.stdout + noReverse.stderr).toBe(0);
      const refused = await runCli(['compare', FILE], { env });
      expect(refused.code).toBe(1);
      expect(refused.stdout).toContain('error compare_after_switchover: node "new_leaf" took over writes from "old_root"');
      expect(refused.stdout).toContain('hint: switch over with --reverse');
    } finally {
      for (const proc of processes) await proc.kill('SIGTERM');
    }
  });
});
