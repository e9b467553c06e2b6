/**
 * Where the time of many small tables goes, phase by phase (a developer's
 * probe, not a published bench): the plan's catalog reads, pg_dump, the
 * schema-copy dry run; the apply per action kind; the run until copied.
 * Usage: tsx bench/tables-profile.ts [--tables 500] [--no-run]
 */
import { parseArgs } from 'node:util';
import { executePlan, connectionsOf } from '../src/executor/index.js';
import { planFile } from '../src/workflow/index.js';
import { log, pgconveyAllCopied, sql, startBenchServers, startRun, waitUntil, writeDesiredState } from './pg.js';

const { values: args } = parseArgs({ options: { tables: { type: 'string', default: '500' }, rows: { type: 'string', default: '200' }, 'no-run': { type: 'boolean', default: false } } });
const TABLES = Number(args.tables);

async function main(): Promise<void> {
  const { source, target } = await startBenchServers(12, 17);
  try {
    await sql(source, 'postgres', 'CREATE DATABASE bench');
    await sql(source, 'bench', `DO $$ BEGIN FOR i IN 0..${TABLES - 1} LOOP
      IF i % 20 = 0 THEN EXECUTE format('CREATE SCHEMA tenant_%s', i / 20); END IF;
      EXECUTE format('CREATE TABLE tenant_%s.t_%s (id int PRIMARY KEY, account int NOT NULL, name text, amount numeric(12,2), created timestamptz NOT NULL DEFAULT now())', i / 20, i);
      EXECUTE format('INSERT INTO tenant_%s.t_%s (id, account, name, amount) SELECT g, g %% 17, md5(g::text), g * 1.25 FROM generate_series(1, ${Number(args.rows)}) g', i / 20, i);
    END LOOP; END $$`);
    await sql(target, 'postgres', 'CREATE DATABASE t1');
    const file = writeDesiredState(source, 'bench', target, 't1', { queue: 'q1', include: ['tenant_*.*'], copyParallel: 2 });
    let t = Date.now();
    const planned = await planFile(file);
    if (planned.plan.errored) throw new Error(JSON.stringify(planned.plan.checks.filter((c) => c.severity === "error")));
    log(`plan ${Date.now() - t} ms, ${planned.plan.actions.length} actions`);
    const byKind = new Map<string, { n: number; ms: number }>();
    t = Date.now();
    await executePlan(planned.plan, connectionsOf(planned.state.databases), {
      onDone: (a, ms) => {
        const k = byKind.get(a.kind) ?? { n: 0, ms: 0 };
        k.n++; k.ms += ms; byKind.set(a.kind, k);
      },
    }, planned.tools);
    log(`apply ${Date.now() - t} ms: ${[...byKind].map(([k, v]) => `${k} ${v.n}× ${Math.round(v.ms)} ms`).join(', ')}`);
    if (args['no-run']) return;
    t = Date.now();
    const run = await startRun(file);
    const states: string[] = [];
    await waitUntil('copied', async () => {
      const r = await sql(target, 't1', 'SELECT state::text AS s, count(*)::int AS n FROM pgconvey.subscriber_table GROUP BY 1 ORDER BY 1').catch(() => []);
      states.push(`${((Date.now() - t) / 1000).toFixed(1)}s ${r.map((x) => `${x.s}=${x.n}`).join(' ')}`);
      return pgconveyAllCopied(target, 't1');
    }, 3_600_000, 500);
    log(`states: ${states.join(' | ')}`);
    log(`run ${Date.now() - t} ms (ready after ${run.readyMs} ms)`);
    await run.stop();
  } finally {
    await Promise.all([source.stop(), target.stop()]);
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
