/**
 * Capture-cost micro-benchmark: where the capture trigger's time goes, on one
 * durable server (bench/pg.ts settings), pgbench_accounts captured by a
 * pgconvey queue. The engine's capture SQL is not changed: the variants are
 * copies of the installed capture function (read back with
 * pg_get_functiondef) with one part cut out, each installed as the only
 * AFTER ROW trigger of the table in turn:
 *
 *   none        — no trigger;
 *   empty       — a plpgsql trigger that returns NULL (the price of any row trigger);
 *   wrapper     — empty, but SECURITY DEFINER with the capture's SET clauses (the function-call wrapper);
 *   no-insert   — the capture without its event-table INSERT (row image, txid routing, shape check, wrapper);
 *   no-shape    — the capture without its shape check (the shape taken as known);
 *   no-wrapper  — the capture without SECURITY DEFINER and SET clauses;
 *   txid-default — the capture with ev_txid left to the column default (txid_current() once more);
 *   no-nested   — the capture without its check for a nested capture in the transaction (what a row
 *                 version superseded before its capture fires needs: the code before it);
 *   capture     — the capture as installed (a copy, owned by the bench's superuser);
 *   installed   — the installed trigger itself (owned by the capture role);
 *   other-trigger — installed, with another AFTER ROW trigger on the table that writes nothing (an empty one);
 *   touch       — installed, with another AFTER UPDATE trigger that updates its row again (a nested
 *                 UPDATE: two captures per update, the outer one reading the row by its key);
 *   touch-no-nested — the same with the no-nested copy (two captures, no read by key: not exact);
 *   statement   — a statement-level trigger with a transition table writing U events (no shape check);
 *   statement-full — the same with old and new transition tables, the txid and event table, the shape
 *                 check and the key change told apart (D / I / U): what an exact statement-level capture of
 *                 an UPDATE would at least do.
 *
 * Each variant runs N single-row UPDATEs of pgbench_accounts inside one
 * server-side procedure (no client round trip), once with a COMMIT after each
 * (the OLTP case: the shape check runs every transaction) and once in one
 * transaction; synchronous_commit = off in that session so that commit fsyncs
 * do not drown the CPU cost being measured. Rounds interleave the variants.
 * Then pg_stat_user_functions (track_functions = all) of the installed
 * trigger, and EXPLAIN ANALYZE of one multi-row UPDATE: the row trigger
 * against a statement-level trigger with a transition table writing the same
 * events (what a statement-level capture could win for multi-row statements).
 * And (PG 11+) single-row UPDATEs of a partitioned copy of the table, captured
 * against not captured (each partition's shape check).
 *
 * Usage: npm run bench:capture [-- --updates 20000 --rounds 3 --multi 20000 --major 12]
 *        npm run bench:capture -- --quick
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import pg from 'pg';
import * as engine from '../src/engine/index.js';
import { startServer } from '../src/embedded/index.js';
import { connect, interleaved, log, median, pgbench, sleep, spread, sql } from './pg.js';
import { commandLine, header, mdTable, publish, runMain } from './report.js';

const { values: args } = parseArgs({
  options: {
    updates: { type: 'string', default: '20000' },
    multi: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '3' },
    major: { type: 'string', default: '12' },
    quick: { type: 'boolean', default: false },
  },
});
const QUICK = args.quick!;
const N = QUICK ? 1000 : Number(args.updates);
const MULTI = QUICK ? 1000 : Number(args.multi);
const ROUNDS = QUICK ? 1 : Number(args.rounds);
const DB = 'bench';

const VARIANTS = ['none', 'empty', 'wrapper', 'no-insert', 'no-shape', 'no-wrapper', 'txid-default', 'no-nested', 'capture', 'installed', 'other-trigger', 'touch', 'touch-no-nested', 'statement', 'statement-full'] as const;
type Variant = (typeof VARIANTS)[number];

async function main(): Promise<void> {
  const started = Date.now();
  const server = await startServer({ major: Number(args.major), durable: true, settings: { track_functions: "'all'" } });
  let c: pg.Client | undefined;
  try {
    await sql(server, 'postgres', `CREATE DATABASE ${DB}`);
    await pgbench(server, DB, ['-i', '-s', '1', '-q']);
    c = await connect(server, DB);
    await engine.installEngine(c);
    await engine.createQueue(c, 'bench');
    await engine.addTable(c, 'bench', 'public', 'pgbench_accounts');
    await c.query('VACUUM ANALYZE pgbench_accounts');
    const [trg] = (
      await c.query(
        `SELECT t.tgname, p.oid::regprocedure::text AS fn, pg_get_functiondef(p.oid) AS def, p.proconfig
           FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
          WHERE t.tgrelid = 'pgbench_accounts'::regclass AND NOT t.tgisinternal AND p.proname ~ '^capture_[0-9]+$'`,
      )
    ).rows;
    if (!trg) throw new Error('no capture trigger found on pgbench_accounts');
    const def: string = trg.def;
    const events = (await c.query("SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables WHERE schemaname = 'pgconvey' AND tablename ~ '^event_[0-9]+_[0-9]$'")).rows.map((r) => r.t as string);

    // The variants: copies of the installed function with one part cut, as bench.<name>().
    const rename = (d: string, name: string) => d.replace(/FUNCTION\s+pgconvey\.capture_\d+\(\)/, `FUNCTION bench."${name}"()`);
    const noWrapper = (d: string) => d.replace(/^\s*SECURITY DEFINER\s*$/m, '').replace(/^\s*SET [a-z_]+ (TO|=) .*$/gim, '');
    const noInsert = (d: string) => d.replace(/INSERT INTO pgconvey\.event_\d+_\d+ \((ev_txid, )?ev_table, ev_op, ev_shape, ev_key, ev_data\) VALUES \(/g, 'PERFORM ROW(');
    const noShape = (d: string) => d.replace(/IF pgconvey\.capture_columns\(.*? THEN v_shape := (\d+); ELSE .*?END IF; (?=IF pg_catalog\.current_setting|IF TG_OP)/s, 'v_shape := $1; ');
    const noNested = (d: string) => d.replace(/IF pg_catalog\.current_setting\('pgconvey\.nested_\d+', true\) .*?RETURN NULL; END IF; END IF; (?=IF TG_OP OPERATOR\(pg_catalog\.=\) 'INSERT')/s, '');
    const bodies: Partial<Record<Variant, string>> = {
      empty: `CREATE FUNCTION bench.empty() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$`,
      wrapper: `CREATE FUNCTION bench.wrapper() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER ${(trg.proconfig as string[] | null ?? []).map((s) => `SET ${s.replace('=', ' = ')}`).join(' ')} AS $$BEGIN RETURN NULL; END$$`,
      'no-insert': rename(noInsert(def), 'no-insert'),
      'no-shape': rename(noShape(def), 'no-shape'),
      'no-wrapper': rename(noWrapper(def), 'no-wrapper'),
      capture: rename(def, 'capture'),
      'no-nested': rename(noNested(def), 'no-nested'),
      // The event's transaction id left to the column default (txid_current() once more per row), as before.
      'txid-default': rename(def.replace(/\(ev_txid, ev_table/g, '(ev_table').replace(/VALUES \(v_txid, /g, 'VALUES ('), 'txid-default'),
    };
    if (bodies['no-nested'] === rename(def, 'no-nested') || bodies['no-insert'] === rename(def, 'no-insert') || bodies['no-shape'] === rename(def, 'no-shape') || bodies['txid-default'] === rename(def, 'txid-default')) throw new Error(`could not cut the capture function into its parts; its text changed:\n${def}`);
    if (process.env.BENCH_SHOW_VARIANTS) for (const [v, b] of Object.entries(bodies)) log(`variant ${v}:\n${b}`);
    await c.query('CREATE SCHEMA bench');
    for (const b of Object.values(bodies)) await c.query(b!);
    // The other triggers: one writing nothing, one updating its row again (once: not in the nested UPDATE).
    await c.query(`CREATE FUNCTION bench.touch() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN UPDATE public.pgbench_accounts SET filler = filler WHERE aid = NEW.aid; RETURN NULL; END $$`);
    // A statement-level trigger with a transition table writing the same events (U only: no key change
    // nor shape check — a lower bound of what a statement-level capture costs).
    const shape = Number((await c.query("SELECT substring($1 from 'v_shape := (\\d+);')::int AS s", [def])).rows[0].s);
    const tableId = Number((await c.query("SELECT table_id FROM pgconvey.captured_table WHERE table_name = 'pgbench_accounts'")).rows[0].table_id);
    const evTable = events.find((e) => e.endsWith('_0'))!;
    await c.query(`CREATE FUNCTION bench.stmt() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
      BEGIN
        INSERT INTO ${evTable} (ev_table, ev_op, ev_shape, ev_key, ev_data)
        SELECT ${tableId}, 'U', ${shape}, NULL, pg_catalog.textin(pg_catalog.record_out(n)) FROM new_rows n;
        RETURN NULL;
      END $$`);
    // The same with what an exact statement-level capture of an UPDATE needs besides: the transaction id and
    // its event table, the planned shape check, and the key change told by the keys of the old and new rows
    // (a D for an old key no new row has; the new rows as U, or I where no old row had the key).
    const check = (def.match(/IF pgconvey\.capture_columns\(.*? THEN v_shape := \d+; ELSE .*?END IF; /s) ?? [''])[0];
    const pick = (def.match(/v_txid := pg_catalog\.txid_current\(\); v_cur := .*?; /s) ?? [''])[0];
    if (!check || !pick) throw new Error(`could not find the shape check or the event table pick in the capture function:\n${def}`);
    await c.query(`CREATE FUNCTION bench.stmt_full() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
      DECLARE v_cur pg_catalog.int8; v_txid pg_catalog.int8; v_shape pg_catalog.int4;
      BEGIN
        ${pick} ${check}
        IF v_cur OPERATOR(pg_catalog.=) 0 THEN
          INSERT INTO ${evTable} (ev_txid, ev_table, ev_op, ev_shape, ev_key, ev_data)
          SELECT v_txid, ${tableId}, 'D', v_shape, pg_catalog.textin(pg_catalog.record_out(ROW(o.aid))), NULL FROM old_rows o
           WHERE NOT EXISTS (SELECT FROM new_rows n WHERE ROW(n.aid)::pg_catalog.record OPERATOR(pg_catalog.*=) ROW(o.aid)::pg_catalog.record);
          INSERT INTO ${evTable} (ev_txid, ev_table, ev_op, ev_shape, ev_key, ev_data)
          SELECT v_txid, ${tableId},
                 CASE WHEN EXISTS (SELECT FROM old_rows o WHERE ROW(n.aid)::pg_catalog.record OPERATOR(pg_catalog.*=) ROW(o.aid)::pg_catalog.record) THEN 'U' ELSE 'I' END,
                 v_shape, NULL, pg_catalog.textin(pg_catalog.record_out(n)) FROM new_rows n;
        ELSE
          INSERT INTO ${evTable} (ev_txid, ev_table, ev_op, ev_shape, ev_key, ev_data)
          SELECT v_txid, ${tableId}, 'U', v_shape, NULL, pg_catalog.textin(pg_catalog.record_out(n)) FROM new_rows n;
        END IF;
        RETURN NULL;
      END $$`);
    await c.query(`CREATE PROCEDURE bench.updates(n int, per_tx int) LANGUAGE plpgsql AS $$
      BEGIN
        FOR i IN 1..n LOOP
          UPDATE public.pgbench_accounts SET abalance = abalance + 1 WHERE aid = 1 + (i * 7919) % 100000;
          IF i % per_tx = 0 THEN COMMIT; END IF;
        END LOOP;
      END $$`);
    await c.query('SET synchronous_commit = off');

    const use = async (v: Variant) => {
      const installed = v === 'installed' || v === 'other-trigger' || v === 'touch';
      await c!.query(`ALTER TABLE pgbench_accounts ${installed ? 'ENABLE' : 'DISABLE'} TRIGGER ${JSON.stringify(trg.tgname)}`);
      await c!.query('DROP TRIGGER IF EXISTS bench_v ON pgbench_accounts');
      await c!.query('DROP TRIGGER IF EXISTS bench_other ON pgbench_accounts');
      if (bodies[v]) await c!.query(`CREATE TRIGGER bench_v AFTER INSERT OR UPDATE OR DELETE ON pgbench_accounts FOR EACH ROW EXECUTE PROCEDURE bench."${v}"()`);
      if (v === 'touch-no-nested') await c!.query('CREATE TRIGGER bench_v AFTER INSERT OR UPDATE OR DELETE ON pgbench_accounts FOR EACH ROW EXECUTE PROCEDURE bench."no-nested"()');
      if (v === 'other-trigger') await c!.query('CREATE TRIGGER bench_other AFTER UPDATE ON pgbench_accounts FOR EACH ROW EXECUTE PROCEDURE bench.empty()');
      if (v === 'touch' || v === 'touch-no-nested') await c!.query('CREATE TRIGGER bench_other AFTER UPDATE ON pgbench_accounts FOR EACH ROW WHEN (pg_trigger_depth() < 1) EXECUTE PROCEDURE bench.touch()');
      if (v === 'statement') await c!.query('CREATE TRIGGER bench_v AFTER UPDATE ON pgbench_accounts REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE PROCEDURE bench.stmt()');
      if (v === 'statement-full') await c!.query('CREATE TRIGGER bench_v AFTER UPDATE ON pgbench_accounts REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE PROCEDURE bench.stmt_full()');
      if (events.length) await c!.query(`TRUNCATE ${events.join(', ')}`);
      await c!.query('CHECKPOINT');
    };
    // The backend's own CPU time (ns on CPU, /proc/<pid>/schedstat: the server runs on this machine), so that
    // the other load of the machine does not count; wall time where that cannot be read.
    const pid = Number((await c.query('SELECT pg_backend_pid() AS p')).rows[0].p);
    const onCpu = (): number | undefined => {
      try {
        return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
      } catch {
        return undefined;
      }
    };
    const CPU = onCpu() !== undefined;
    const timed = async (q: string) => {
      const t0 = process.hrtime.bigint();
      const c0 = onCpu();
      await c!.query(q);
      const c1 = onCpu();
      return c0 !== undefined && c1 !== undefined ? c1 - c0 : Number(process.hrtime.bigint() - t0) / 1e6;
    };
    const perTx: Record<Variant, number[]> = Object.fromEntries(VARIANTS.map((v) => [v, []])) as any;
    const oneTx: Record<Variant, number[]> = Object.fromEntries(VARIANTS.map((v) => [v, []])) as any;
    log(`${ROUNDS} interleaved rounds of ${VARIANTS.length} variants × ${N} single-row updates (a transaction each, then all in one)`);
    await interleaved(ROUNDS, VARIANTS, async (v, round) => {
      await use(v);
      await c!.query(`CALL bench.updates(${Math.min(1000, N)}, 1)`); // warm the plan caches
      perTx[v].push(await timed(`CALL bench.updates(${N}, 1)`));
      oneTx[v].push(await timed(`CALL bench.updates(${N}, ${N})`));
      log(`  round ${round + 1} ${v}: ${perTx[v].at(-1)!.toFixed(0)} ms a transaction each, ${oneTx[v].at(-1)!.toFixed(0)} ms in one`);
      return 0;
    });

    // pg_stat_user_functions of the installed trigger, a transaction per update.
    await use('installed');
    await c.query("SET track_functions = 'all'");
    const fnStats = async () => {
      await sleep(1500); // the statistics reach the views after a delay
      await c!.query('SELECT pg_stat_clear_snapshot()');
      const { rows } = await c!.query("SELECT schemaname || '.' || funcname AS f, calls, total_time, self_time FROM pg_stat_user_functions WHERE schemaname = 'pgconvey'");
      return new Map(rows.map((r) => [r.f as string, { calls: Number(r.calls), total: Number(r.total_time), self: Number(r.self_time) }]));
    };
    const before = await fnStats();
    await c.query(`CALL bench.updates(${N}, 1)`);
    const after = await fnStats();
    const fstats = [...after]
      .map(([f, a]) => {
        const b = before.get(f) ?? { calls: 0, total: 0, self: 0 };
        return { f, calls: a.calls - b.calls, total_time: a.total - b.total, self_time: a.self - b.self };
      })
      .filter((r) => r.calls > 0)
      .sort((x, y) => y.total_time - x.total_time);

    // One multi-row UPDATE: the row trigger vs a statement-level trigger with a transition table (bench.stmt).
    const explain = async (mode: 'none' | 'row' | 'statement' | 'statement-full') => {
      await use(mode === 'row' ? 'installed' : 'none');
      if (mode === 'statement') await c!.query('CREATE TRIGGER bench_v AFTER UPDATE ON pgbench_accounts REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE PROCEDURE bench.stmt()');
      if (mode === 'statement-full') await c!.query('CREATE TRIGGER bench_v AFTER UPDATE ON pgbench_accounts REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE PROCEDURE bench.stmt_full()');
      await c!.query('BEGIN');
      const plan = (await c!.query(`EXPLAIN (ANALYZE, FORMAT JSON) UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= ${MULTI}`)).rows[0]['QUERY PLAN'][0];
      await c!.query('COMMIT');
      const trig = (plan.Triggers ?? []) as Array<{ 'Trigger Name': string; Time: number; Calls: number }>;
      return { total: plan['Execution Time'] as number, trigger: trig.reduce((s, t) => s + t.Time, 0) };
    };
    const multi = { none: [] as number[], row: [] as number[], statement: [] as number[], 'statement-full': [] as number[] };
    const multiTrig = { row: [] as number[], statement: [] as number[], 'statement-full': [] as number[] };
    await interleaved(ROUNDS, ['none', 'row', 'statement', 'statement-full'] as const, async (m) => {
      const r = await explain(m);
      multi[m].push(r.total);
      if (m !== 'none') multiTrig[m].push(r.trigger);
      return r.total;
    });
    await use('installed');

    // A partitioned table (PG 11+): 8 range partitions of a copy of pgbench_accounts, captured, against the
    // same table not captured; single-row UPDATEs, a transaction each (every partition's shape check).
    const part = { plain: [] as number[], captured: [] as number[] };
    if (Number(args.major) >= 11) {
      for (const name of ['paccounts', 'paccounts_plain']) {
        await c.query(`CREATE TABLE public.${name} (LIKE public.pgbench_accounts INCLUDING ALL) PARTITION BY RANGE (aid)`);
        for (let i = 0; i < 8; i++) await c.query(`CREATE TABLE public.${name}_${i} PARTITION OF public.${name} FOR VALUES FROM (${i * 12500 + 1}) TO (${(i + 1) * 12500 + 1})`);
        await c.query(`INSERT INTO public.${name} SELECT * FROM public.pgbench_accounts`);
        await c.query(`VACUUM ANALYZE public.${name}`);
        await c.query(`CREATE PROCEDURE bench.${name}_updates(n int) LANGUAGE plpgsql AS $$
          BEGIN
            FOR i IN 1..n LOOP
              UPDATE public.${name} SET abalance = abalance + 1 WHERE aid = 1 + (i * 7919) % 100000;
              COMMIT;
            END LOOP;
          END $$`);
      }
      await engine.addTable(c, 'bench', 'public', 'paccounts');
      await interleaved(ROUNDS, ['plain', 'captured'] as const, async (m) => {
        const proc = m === 'plain' ? 'bench.paccounts_plain_updates' : 'bench.paccounts_updates';
        await c!.query(`CALL ${proc}(${Math.min(1000, N)})`);
        part[m].push(await timed(`CALL ${proc}(${N})`));
        log(`  partitioned ${m}: ${part[m].at(-1)!.toFixed(0)} ms`);
        return 0;
      });
    }

    const us = (ms: number, n: number) => (ms * 1000) / n;
    const show = (x: number) => x.toFixed(1);
    const cost = (xs: Record<Variant, number[]>, v: Variant) => us(median(xs[v]) - median(xs.none), N);
    const described: Record<Variant, string> = {
      none: 'no trigger (the UPDATE itself)',
      empty: 'an empty plpgsql row trigger',
      wrapper: 'empty + SECURITY DEFINER and the SET clauses',
      'no-insert': 'capture without the event INSERT (image, routing, shape check, wrapper)',
      'no-shape': 'capture without the shape check',
      'no-wrapper': 'capture without SECURITY DEFINER / SET',
      'no-nested': 'capture without the nested-capture check (the code before it)',
      capture: 'capture (copy of the installed function)',
      installed: 'the installed capture trigger',
      'other-trigger': 'installed + an empty AFTER ROW trigger (writes nothing)',
      touch: 'installed + an AFTER UPDATE trigger updating its row again (2 captures, the outer one reads by key)',
      'touch-no-nested': 'no-nested copy + the same trigger (2 captures, no read: not exact)',
      'txid-default': 'capture with ev_txid from the column default (txid_current() again)',
      statement: 'a statement-level trigger with a transition table (U events only, no shape check)',
      'statement-full': 'a statement-level trigger with old and new transition tables: txid, event table, shape check, key change (D/I/U)',
    };
    const lines = [
      ...(await header('Capture cost: where the trigger time goes', commandLine('bench:capture'), started, [['server', server]], QUICK)),
      `Table: pgbench_accounts (100,000 rows; int, int, int, char(84)) captured by one queue; the capture's SET clauses: ${(trg.proconfig ?? []).join(', ') || 'none'}. ${N} single-row UPDATEs in a server-side loop (no round trips), synchronous_commit = off in that session. Figures: median (min–max, n) of ${ROUNDS} interleaved rounds; µs per update ${CPU ? 'of the backend\'s own CPU time (/proc/<pid>/schedstat: the rest of the machine\'s load does not count)' : 'of wall time'}, over "no trigger".`,
      '',
      ...mdTable(
        ['variant', 'a transaction per update: µs/update', 'over no trigger', 'all in one transaction: µs/update', 'over no trigger'],
        VARIANTS.map((v) => [described[v], spread(perTx[v].map((ms) => us(ms, N)), show), v === 'none' ? '—' : show(cost(perTx, v)), spread(oneTx[v].map((ms) => us(ms, N)), show), v === 'none' ? '—' : show(cost(oneTx, v))]),
      ),
      '',
      `Parts, a transaction per update (differences of medians, µs/update): the row trigger itself ${show(cost(perTx, 'empty'))}; SECURITY DEFINER + SET ${show(cost(perTx, 'wrapper') - cost(perTx, 'empty'))} (in the full capture: ${show(cost(perTx, 'capture') - cost(perTx, 'no-wrapper'))}); the event INSERT ${show(cost(perTx, 'capture') - cost(perTx, 'no-insert'))}; the shape check ${show(cost(perTx, 'capture') - cost(perTx, 'no-shape'))}; the nested-capture check ${show(cost(perTx, 'capture') - cost(perTx, 'no-nested'))} (in one transaction ${show(cost(oneTx, 'capture') - cost(oneTx, 'no-nested'))}); with a trigger updating its row again, the read by key ${show(cost(perTx, 'touch') - cost(perTx, 'touch-no-nested'))} (in one transaction ${show(cost(oneTx, 'touch') - cost(oneTx, 'touch-no-nested'))}); ev_txid from the column default instead of v_txid ${show(cost(perTx, 'txid-default') - cost(perTx, 'capture'))}; the rest (row image, txid routing, plpgsql statements) ${show(cost(perTx, 'no-insert') - cost(perTx, 'wrapper') - (cost(perTx, 'capture') - cost(perTx, 'no-shape')))}. In one transaction the shape check is taken from the session setting after the first row: ${show(cost(oneTx, 'capture') - cost(oneTx, 'no-shape'))}.`,
      '',
      `pg_stat_user_functions (track_functions = all) for ${N} updates, a transaction each, through the installed trigger:`,
      '',
      ...mdTable(['function', 'calls', 'total ms', 'self ms', 'µs per call (total)'], fstats.map((r) => [r.f, String(r.calls), Number(r.total_time).toFixed(1), Number(r.self_time).toFixed(1), us(Number(r.total_time), Number(r.calls)).toFixed(1)])),
      '',
      ...(part.plain.length
        ? [`A partitioned copy of the table (8 range partitions), ${N} single-row UPDATEs a transaction each: not captured ${spread(part.plain.map((ms) => us(ms, N)), show)} µs/update, captured ${spread(part.captured.map((ms) => us(ms, N)), show)} µs/update (${show(us(median(part.captured) - median(part.plain), N))} over not captured).`, '']
        : []),
      `One UPDATE of ${MULTI} rows (EXPLAIN ANALYZE, in a transaction): no trigger ${spread(multi.none, show)} ms; the installed row trigger ${spread(multi.row, show)} ms (trigger time ${spread(multiTrig.row, show)} ms = ${show(us(median(multiTrig.row), MULTI))} µs/row); a statement-level trigger with a transition table writing the same events ${spread(multi.statement, show)} ms (trigger time ${spread(multiTrig.statement, show)} ms = ${show(us(median(multiTrig.statement), MULTI))} µs/row); with old and new transition tables, the shape check and the key change (statement-full) ${spread(multi['statement-full'], show)} ms (trigger time ${spread(multiTrig['statement-full'], show)} ms = ${show(us(median(multiTrig['statement-full']), MULTI))} µs/row).`,
      '',
    ];
    publish(lines.join('\n'), QUICK);
  } finally {
    await c?.end().catch(() => undefined);
    await server.stop();
  }
}

runMain(main);
