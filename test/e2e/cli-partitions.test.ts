/**
 * `pgconvey plan`/`apply` on a partitioned table, through the CLI (old → new):
 * the parent is one table to capture and copy (its partitions never on their
 * own); a partition created later is `~ capture_table` of the parent and gone
 * after apply; a DETACH on old prints `partition_detached` with its hint.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli.js';
import { freshDatabase, type TestDatabase } from '../harness/databases.js';
import { writeTwoNodeFile } from '../harness/desired-file.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const MODERN = sourceServer().major >= 11;
const schema = (key: boolean) => `
  CREATE TABLE public.payment (payment_id int NOT NULL, payment_date date NOT NULL, amount numeric${key ? ', PRIMARY KEY (payment_date, payment_id)' : ''}) PARTITION BY RANGE (payment_date);
  CREATE TABLE public.payment_p2024_01 PARTITION OF public.payment FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
  CREATE TABLE public.payment_p2024_02 PARTITION OF public.payment FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');`;

describe('pgconvey plan/apply with a partitioned table', () => {
  let p: TestDatabase;
  let s: TestDatabase;
  let file: string;

  beforeAll(async () => {
    p = await freshDatabase(sourceServer(), 'clipart_p');
    s = await freshDatabase(targetServer(), 'clipart_s');
    await p.query(schema(MODERN));
    await s.query(schema(true));
    await p.query("INSERT INTO public.payment SELECT g, DATE '2024-01-01' + g % 50, g FROM generate_series(1, 500) g");
    file = writeTwoNodeFile({ oldDsn: p.dsn, newDsn: s.dsn });
    // Archived (detached) months stay behind; PG 10: no key on a partitioned table, the file names it.
    const entries = MODERN ? '' : ', entries: { public.payment: { key: [payment_date, payment_id] } }';
    writeFileSync(file, readFileSync(file, 'utf8').replace('tables: { include: ["public.*"] }', `tables: { include: ["public.*"], exclude: ["public.*_archived"]${entries} }`));
  });

  it('plans the parent alone, applies, and plans a new partition and a DETACH', { timeout: 120_000 }, async () => {
    const first = await runCli(['plan', file, '--detailed-exitcode']);
    expect(first.code, first.stdout + first.stderr).toBe(2);
    expect(first.stdout).toContain('+ capture_table public.payment');
    expect(first.stdout).toContain('+ add_subscriber_table public.payment');
    expect(first.stdout).not.toContain('payment_p2024_01');
    expect(first.stdout).not.toContain('partitioned_table_not_supported');
    expect((await runCli(['apply', file, '--auto-approve'])).code).toBe(0);
    const none = await runCli(['plan', file, '--detailed-exitcode']);
    expect(none.code, none.stdout).toBe(0);

    await s.query("CREATE TABLE public.payment_p2024_03 PARTITION OF public.payment FOR VALUES FROM ('2024-03-01') TO ('2024-04-01')");
    await p.query("CREATE TABLE public.payment_p2024_03 PARTITION OF public.payment FOR VALUES FROM ('2024-03-01') TO ('2024-04-01')");
    const added = await runCli(['plan', file, '--detailed-exitcode']);
    expect(added.code, added.stdout).toBe(2);
    expect(added.stdout).toContain('~ capture_table public.payment');
    expect(added.stdout).toContain('partition(s) public.payment_p2024_03 attached or created since it was captured');
    expect((await runCli(['apply', file, '--auto-approve'])).code).toBe(0);
    expect((await runCli(['plan', file, '--detailed-exitcode'])).code).toBe(0);

    await p.query('ALTER TABLE public.payment DETACH PARTITION public.payment_p2024_02');
    await p.query('ALTER TABLE public.payment_p2024_02 RENAME TO payment_2024_02_archived');
    const detached = await runCli(['plan', file]);
    expect(detached.code, detached.stdout).toBe(0);
    expect(detached.stdout).toContain('warning partition_detached: table public.payment_2024_02_archived was a partition of public.payment');
    expect(detached.stdout).toMatch(/hint: on each subscriber detach \(or drop\) the same partition of public\.payment/);
    expect(detached.stdout).toContain('~ capture_table public.payment');
  });
});
