/**
 * Saved plans on real databases: `plan --out` writes a plan without secrets;
 * `apply PLANFILE` runs it when nothing changed, and refuses it — changing
 * nothing — when a catalog changed since (stale), when it is pointed at
 * other databases, or when the file was edited (tampered): a parameter
 * changed, an action added, an executable slipped in for pg_dump.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli.js';
import { freshDatabase, type TestDatabase } from '../harness/databases.js';
import { writeTwoNodeFile } from '../harness/desired-file.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const FILE = 'test/fixtures/scenarios/shop.yaml';
const SCHEMA = `
  CREATE TABLE public.orders (id bigserial PRIMARY KEY, total numeric);
  CREATE TABLE public.audit (event_id bigint NOT NULL, body text);`;

async function pair(prefix: string): Promise<[TestDatabase, TestDatabase]> {
  const p = await freshDatabase(sourceServer(), `${prefix}_p`);
  const s = await freshDatabase(targetServer(), `${prefix}_s`);
  await p.query(SCHEMA);
  await s.query(SCHEMA);
  return [p, s];
}

const envOf = (p: TestDatabase, s: TestDatabase) => ({ PGCONVEY_OLD_DSN: `${p.dsn} password=sekret-old`, PGCONVEY_NEW_DSN: `${s.dsn} password=sekret-new` });

async function engineInstalled(db: TestDatabase): Promise<boolean> {
  return (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'pgconvey'")).rows[0]!.n > 0;
}

describe('saved plans', () => {
  const dir = mkdtempSync('/tmp/pgconvey-saved-plan-');

  it('are written without secrets and applied when nothing changed', { timeout: 90_000 }, async () => {
    const [p, s] = await pair('sp_ok');
    const env = envOf(p, s);
    const made = await runCli(['plan', FILE, '--out', `${dir}/ok.json`], { env });
    expect(made.code, made.stdout + made.stderr).toBe(0);
    expect(made.stderr).toContain(`Saved the plan to ${dir}/ok.json`);
    const text = readFileSync(`${dir}/ok.json`, 'utf8');
    expect(text).not.toMatch(/sekret/);
    const saved = JSON.parse(text);
    expect(saved.format).toBe('pgconvey-plan');
    expect(saved.databases.map((d: { name: string }) => d.name)).toEqual(['old', 'new']);
    expect(saved.plan.actions.length).toBeGreaterThan(0);

    // A row written meanwhile changes no catalog the plan depends on.
    await p.query('INSERT INTO public.orders (total) SELECT g FROM generate_series(1, 1000) g; ANALYZE public.orders');
    const applied = await runCli(['apply', `${dir}/ok.json`], { env });
    expect(applied.code, applied.stdout).toBe(0);
    expect(applied.stdout).toContain(`Apply complete: ${saved.plan.actions.length} action(s).`);
    const again = await runCli(['plan', FILE, '--detailed-exitcode'], { env });
    expect(again.code, again.stdout).toBe(0);

    // Applied once, the plan is stale: the catalogs now differ from when it was made.
    const twice = await runCli(['apply', `${dir}/ok.json`], { env });
    expect(twice.code).toBe(1);
    expect(twice.stdout).toContain('error plan_stale');
  });

  it('are refused as stale after a catalog change, changing nothing', { timeout: 60_000 }, async () => {
    const [p, s] = await pair('sp_stale');
    const env = envOf(p, s);
    expect((await runCli(['plan', FILE, '--out', `${dir}/stale.json`], { env })).code).toBe(0);
    await p.query('CREATE TABLE public.invoices (id int PRIMARY KEY)');
    const refused = await runCli(['apply', `${dir}/stale.json`], { env });
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/error plan_stale: the saved plan is stale: the catalog of database "old" changed since it was made/);
    expect(refused.stdout).toContain('hint: review a new plan');
    expect(refused.stdout).not.toMatch(/sekret/);
    expect(await engineInstalled(p)).toBe(false);
    expect(await engineInstalled(s)).toBe(false);
  });

  it('are refused when pointed at other databases, changing nothing', { timeout: 60_000 }, async () => {
    const [p, s] = await pair('sp_here');
    const [p2, s2] = await pair('sp_there');
    expect((await runCli(['plan', FILE, '--out', `${dir}/here.json`], { env: envOf(p, s) })).code).toBe(0);
    const refused = await runCli(['apply', `${dir}/here.json`], { env: envOf(p2, s2) });
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain('error plan_for_other_databases: the saved plan was made for other databases');
    expect(refused.stdout).toContain(`database "old" is ${sourceServer().user}@${sourceServer().host}:${sourceServer().port}/${p2.name}, the plan was made for`);
    for (const db of [p, s, p2, s2]) expect(await engineInstalled(db)).toBe(false);
  });

  it('that are damaged or of an unknown version are refused', async () => {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(`${dir}/bad.json`, JSON.stringify({ format: 'pgconvey-plan', version: 99 }));
    const r = await runCli(['apply', `${dir}/bad.json`]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('error plan_file_invalid');
  });

  /** Edits the saved plan in `path` as an attacker with write access to it would, leaving the rest as it was. */
  const tamper = (path: string, edit: (saved: { plan: { actions: Array<{ id: string; kind: string; database: string; params: Record<string, unknown> }> } }) => void) => {
    const saved = JSON.parse(readFileSync(path, 'utf8'));
    edit(saved);
    writeFileSync(path, `${JSON.stringify(saved, null, 2)}\n`);
  };
  const captured = async (db: TestDatabase) => (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_trigger WHERE tgname LIKE 'pgconvey%'")).rows[0]!.n;

  it('are refused as tampered when an action was edited or added, changing nothing', { timeout: 120_000 }, async () => {
    const [p, s] = await pair('sp_edit');
    const env = envOf(p, s);
    const victim = `sp_victim_${p.name.slice(-6)}`;
    await s.query(`CREATE ROLE ${victim} NOLOGIN`);
    expect((await runCli(['plan', FILE, '--out', `${dir}/edit.json`], { env })).code).toBe(0);
    const untouched = readFileSync(`${dir}/edit.json`, 'utf8');
    const edits: Array<[string, Parameters<typeof tamper>[1]]> = [
      ['a parameter changed', (x) => {
        const a = x.plan.actions.find((y) => y.kind === 'capture_table')!;
        a.params.keyColumns = ['total'];
      }],
      ['an action added', (x) => {
        x.plan.actions.push({ id: `grant_role ${victim}`, kind: 'grant_role', database: 'new', params: { parent: 'pg_monitor', member: victim } } as never);
      }],
      ['an action removed', (x) => {
        x.plan.actions.pop();
      }],
    ];
    for (const [label, edit] of edits) {
      writeFileSync(`${dir}/edit.json`, untouched);
      tamper(`${dir}/edit.json`, edit);
      const refused = await runCli(['apply', `${dir}/edit.json`], { env });
      expect(refused.code, `${label}: ${refused.stdout}`).toBe(1);
      expect(refused.stdout, label).toContain('error plan_tampered');
      expect(refused.stdout, label).toContain('hint: do not edit saved plans');
      for (const db of [p, s]) {
        expect(await engineInstalled(db), label).toBe(false);
        expect(await captured(db), label).toBe(0);
      }
      expect((await s.query(`SELECT count(*)::int AS n FROM pg_auth_members WHERE member = '${victim}'::regrole`)).rows[0].n, label).toBe(0);
    }

    // The untouched plan still applies.
    writeFileSync(`${dir}/edit.json`, untouched);
    const applied = await runCli(['apply', `${dir}/edit.json`], { env });
    expect(applied.code, applied.stdout).toBe(0);
    expect(await engineInstalled(s)).toBe(true);
    await s.query(`DROP ROLE ${victim}`);
  });

  it('never run an executable named in the plan file: pg_dump is found at apply time', { timeout: 120_000 }, async () => {
    const p = await freshDatabase(sourceServer(), 'sp_dump_p');
    const s = await freshDatabase(targetServer(), 'sp_dump_s');
    await p.query('CREATE SCHEMA sales; CREATE TABLE sales.t (id int PRIMARY KEY, v text); INSERT INTO sales.t VALUES (1, \'a\')');
    const file = writeTwoNodeFile({ queue: 'sales', tables: ['sales.*'], sequences: ['sales.*'], extra: 'prepare: { schema: copy }' }, 'sales.yaml');
    const env = { PGCONVEY_OLD_DSN: p.dsn, PGCONVEY_NEW_DSN: s.dsn };
    const made = await runCli(['plan', file, '--out', `${dir}/dump.json`], { env });
    expect(made.code, made.stdout).toBe(0);
    const untouched = readFileSync(`${dir}/dump.json`, 'utf8');
    const saved = JSON.parse(untouched);
    const copy = saved.plan.actions.find((a: { kind: string }) => a.kind === 'copy_schema');
    expect(copy, untouched).toBeDefined();
    expect(JSON.stringify(copy.params)).not.toMatch(/pg_dump|\//);

    const marker = `${dir}/ran-${p.name}`;
    writeFileSync(`${dir}/evil-${p.name}`, `#!/bin/sh\ntouch ${marker}\necho "pg_dump (PostgreSQL) 99.0"\n`, { mode: 0o755 });
    for (const exe of ['/bin/sh', `${dir}/evil-${p.name}`]) {
      writeFileSync(`${dir}/dump.json`, untouched);
      tamper(`${dir}/dump.json`, (x) => {
        x.plan.actions.find((a) => a.kind === 'copy_schema')!.params.pgDump = exe;
      });
      const refused = await runCli(['apply', `${dir}/dump.json`], { env });
      expect(refused.code, refused.stdout).toBe(1);
      expect(refused.stdout).toContain('error plan_tampered');
      expect(await engineInstalled(p)).toBe(false);
      expect(await engineInstalled(s)).toBe(false);
      expect((await s.query("SELECT to_regclass('sales.t') AS r")).rows[0].r).toBeNull();
      expect(() => readFileSync(marker)).toThrow();
    }

    writeFileSync(`${dir}/dump.json`, untouched);
    const applied = await runCli(['apply', `${dir}/dump.json`], { env, timeoutMs: 60_000 });
    expect(applied.code, applied.stdout).toBe(0);
    expect((await s.query("SELECT to_regclass('sales.t')::text AS r")).rows[0].r).toBe('sales.t');
  });
});
