/**
 * Where one add_table call goes (a developer's probe): one server, N small
 * tables, the engine installed, add_table timed in groups of 20 per
 * transaction (as apply groups them), with pg_stat_user_functions.
 * Usage: tsx bench/add-table-probe.ts [--tables 200] [--major 12] [--group 20] [--batch 0] [--sql extra.sql]
 * (--batch N: pgconvey.add_tables of N tables per call, --group tables per transaction)
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startServer } from '../src/embedded/index.js';
import { installEngine, createQueue } from '../src/engine/index.js';
import { connect, log, sql } from './pg.js';

const { values: args } = parseArgs({ options: { tables: { type: 'string', default: '200' }, major: { type: 'string', default: '12' }, sql: { type: 'string' }, rounds: { type: 'string', default: '2' }, batch: { type: 'string', default: '0' }, group: { type: 'string', default: '20' } } });
const N = Number(args.tables);

async function main(): Promise<void> {
  const s = await startServer({ major: Number(args.major), durable: true, settings: { track_functions: 'all' } });
  try {
    await sql(s, 'postgres', 'CREATE DATABASE bench');
    await sql(s, 'bench', `DO $$ BEGIN FOR i IN 0..${N - 1} LOOP
      IF i % 20 = 0 THEN EXECUTE format('CREATE SCHEMA tenant_%s', i / 20); END IF;
      EXECUTE format('CREATE TABLE tenant_%s.t_%s (id int PRIMARY KEY, account int NOT NULL, name text, amount numeric(12,2), created timestamptz NOT NULL DEFAULT now())', i / 20, i);
    END LOOP; END $$`);
    const c = await connect(s, 'bench');
    c.on('error', () => undefined);
    await installEngine(c);
    if (args.sql) await c.query(readFileSync(args.sql, 'utf8'));
    await createQueue(c, 'q1');
    for (let round = 0; round < Number(args.rounds); round++) {
      await c.query('SELECT pg_stat_reset()');
      const t = Date.now();
      const G = Number(args.group);
      const B = Number(args.batch);
      for (let i = 0; i < N; i += G) {
        await c.query('BEGIN');
        const js = Array.from({ length: Math.min(N, i + G) - i }, (_, k) => i + k);
        if (B > 0) {
          for (let k = 0; k < js.length; k += B) {
            const spec = js.slice(k, k + B).map((j) => ({ schema: `tenant_${Math.floor(j / 20)}`, table: `t_${j}`, key: null }));
            await c.query('SELECT pgconvey.add_tables($1, $2::jsonb)', ['q1', JSON.stringify(spec)]);
          }
        } else {
          for (const j of js) await c.query('SELECT pgconvey.add_table($1, $2, $3, NULL)', ['q1', `tenant_${Math.floor(j / 20)}`, `t_${j}`]);
        }
        await c.query('COMMIT');
      }
      const ms = Date.now() - t;
      await new Promise((r) => setTimeout(r, 700));
      const f = await c.query("SELECT funcname, calls, round(total_time::numeric / $1, 3) AS total_per_table, round(self_time::numeric / $1, 3) AS self_per_table FROM pg_stat_user_functions WHERE schemaname = 'pgconvey' ORDER BY total_time DESC LIMIT 12", [N]);
      log(`round ${round} (${round === 0 ? 'new' : 'again'}): ${N} add_table in ${ms} ms = ${(ms / N).toFixed(2)} ms/table`);
      for (const r of f.rows) log(`  ${r.funcname} calls=${r.calls} total/table=${r.total_per_table} ms self/table=${r.self_per_table} ms`);
      const tm = await c.query("SELECT label, count(*) AS n, round((sum(us) / $1 / 1000)::numeric, 3) AS ms FROM public.tm_acc GROUP BY 1 ORDER BY sum(us) DESC LIMIT 25", [N]).catch(() => ({ rows: [] }));
      for (const r of tm.rows) log(`  mark ${r.label} n=${r.n} ${r.ms} ms/table`);
      await c.query('TRUNCATE public.tm_acc').catch(() => undefined);
    }
    await c.end();
  } finally {
    await s.stop();
  }
}
main().catch((e) => { console.error(e.message, e.where ?? ''); process.exit(1); });
