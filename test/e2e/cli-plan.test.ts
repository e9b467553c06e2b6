/**
 * `pgconvey plan` against real databases (old → new): the three renderings,
 * the exit codes, a table without a key, and an unreachable database.
 */
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli.js';
import { freshDatabase, type TestDatabase } from '../harness/databases.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const FILE = 'test/fixtures/scenarios/shop.yaml';
const SCHEMA = `
  CREATE TABLE public.orders (id bigserial PRIMARY KEY, total numeric);
  CREATE TABLE public.customers (id int PRIMARY KEY, name text);
  CREATE TABLE public.audit (event_id bigint NOT NULL, body text);
`;

describe('pgconvey plan', () => {
  let env: Record<string, string>;
  let p: TestDatabase;

  beforeAll(async () => {
    p = await freshDatabase(sourceServer(), 'cliplan_p');
    const s = await freshDatabase(targetServer(), 'cliplan_s');
    await p.query(SCHEMA);
    await s.query(SCHEMA);
    env = { PGCONVEY_OLD_DSN: `${p.dsn} password=NotShown_123`, PGCONVEY_NEW_DSN: s.dsn };
  });

  it('prints the actions and the summary; --detailed-exitcode says there are changes', async () => {
    const r = await runCli(['plan', FILE, '--detailed-exitcode'], { env });
    expect(r.code).toBe(2);
    expect(r.stdout).toContain('  + capture_table public.orders');
    expect(r.stdout).toContain('Plan: 11 to add, 0 to change, 0 to remove.');
    expect(r.stdout).not.toContain('NotShown_123');
  });

  it('--json follows schemas/plan-output.schema.json; --markdown has collapsible details', async () => {
    const r = await runCli(['plan', FILE, '--json'], { env });
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    const validate = new Ajv({ allErrors: true }).compile(JSON.parse(readFileSync('schemas/plan-output.schema.json', 'utf8')));
    expect(validate(doc), JSON.stringify(validate.errors)).toBe(true);
    expect(doc.summary).toEqual({ add: 11, change: 0, remove: 0 });
    const md = await runCli(['plan', FILE, '--markdown'], { env });
    expect(md.stdout).toContain('### pgconvey plan for `test/fixtures/scenarios/shop.yaml`');
    expect(md.stdout).toContain('<details><summary>11 actions</summary>');
  });

  it('names a table without a key and the fix, and exits 1', async () => {
    await p.query('CREATE TABLE public.events (id int NOT NULL UNIQUE, body text)');
    try {
      const r = await runCli(['plan', FILE], { env });
      expect(r.code).toBe(1);
      expect(r.stdout).toContain('error table_without_key: table public.events has no primary key');
      expect(r.stdout).toContain('key: [id]');
      // apply refuses the same plan with its errors only (its own exit was once caught and printed as apply_failed: EEXIT).
      const applied = await runCli(['apply', FILE, '--auto-approve'], { env });
      expect(applied.code).toBe(1);
      expect(applied.stdout).toContain('error table_without_key');
      expect(applied.stdout + applied.stderr).not.toMatch(/apply_failed|EEXIT/);
    } finally {
      await p.query('DROP TABLE public.events');
    }
  });

  it('says which database it cannot reach', async () => {
    const r = await runCli(['plan', FILE], { env: { ...env, PGCONVEY_NEW_DSN: 'host=127.0.0.1 port=1 user=app password=NotShown_123 dbname=x' } });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('error connection_refused: cannot connect to app@127.0.0.1:1/x: connection refused');
    expect(r.stdout + r.stderr).not.toContain('NotShown_123');
  });
});
