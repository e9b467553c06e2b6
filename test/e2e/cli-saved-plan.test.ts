/**
 * Saved plans on real databases: `plan --out` writes a plan without secrets;
 * `apply PLANFILE` runs it when nothing changed, and refuses it — changing
 * nothing — when a catalog changed since (stale) or when it is pointed at
 * other databases.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli.js';
import { freshDatabase, type TestDatabase } from '../harness/databases.js';
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
});
