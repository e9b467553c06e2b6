/**
 * Table names are `{schema, name}` from the file to the SQL: a schema named
 * `a.b` with a table `c` and a schema `a` with a table `b.c` are planned as
 * two tables (two capture_table actions with distinct ids), applied, copied
 * and replicated each into its own table — checked row by row with this
 * test's own SQL on both sides.
 */
import { describe, expect, it } from 'vitest';
import { introspectDatabases } from '../../src/catalog/index.js';
import { loadDesiredStateFromText, parseDsn } from '../../src/config/index.js';
import { createLogger, runTickerDaemon, runWorkerDaemon } from '../../src/daemons/index.js';
import * as engine from '../../src/engine/index.js';
import { connectionsOf, executePlan } from '../../src/executor/index.js';
import { buildPlan } from '../../src/planner/index.js';
import { waitFor } from '../harness/compare.js';
import { freshDatabase } from '../harness/databases.js';
import { twoNodeYaml } from '../harness/desired-file.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const SCHEMA = `CREATE SCHEMA "a.b"; CREATE SCHEMA a;
  CREATE TABLE "a.b".c (id int PRIMARY KEY, v text);
  CREATE TABLE a."b.c" (id int PRIMARY KEY, v text);`;

describe('qualified names end to end', () => {
  it('"a.b".c and a."b.c" are two tables: planned, applied and replicated apart', { timeout: 120_000 }, async () => {
    const [pdb, sdb] = [await freshDatabase(sourceServer(), 'qn_p'), await freshDatabase(targetServer(), 'qn_s')];
    await pdb.query(SCHEMA);
    await sdb.query(SCHEMA);
    await pdb.query(`INSERT INTO "a.b".c SELECT g, 'ab.c ' || g FROM generate_series(1, 3) g; INSERT INTO a."b.c" SELECT g, 'a.bc ' || g FROM generate_series(1, 5) g`);
    const loaded = loadDesiredStateFromText('qn.yaml', twoNodeYaml({ queue: 'q', root: 'root', leaf: 'new', oldDsn: pdb.dsn, newDsn: sdb.dsn, tables: ['"a.b".*', 'a.*'] }), {});
    expect(loaded.diagnostics).toEqual([]);
    const state = loaded.state!;
    const plan = buildPlan({ state, catalogs: await introspectDatabases(state.databases), engineVersion: engine.ENGINE_VERSION });
    expect(plan.errored, JSON.stringify(plan.checks)).toBe(false);
    expect(plan.actions.filter((a) => a.kind === 'capture_table').map((a) => a.id)).toEqual(['capture_table:root:"a.b".c', 'capture_table:root:a."b.c"']);
    await executePlan(plan, connectionsOf(state.databases));
    const stop = new AbortController();
    const log = createLogger({ level: 'error' });
    const daemons = [
      runTickerDaemon({ provider: parseDsn(pdb.dsn), queue: 'q', log, signal: stop.signal }),
      runWorkerDaemon({ provider: parseDsn(pdb.dsn), subscriber: parseDsn(sdb.dsn), queue: 'q', consumer: 'new', log, signal: stop.signal, retryDelayMs: 200 }),
    ];
    const [prov, sub] = [await pdb.connect(), await sdb.connect()];
    const rows = async (c: typeof prov, table: string) => (await c.query(`SELECT id, v FROM ${table} ORDER BY id`)).rows;
    try {
      await waitFor('both tables copied (state ok)', async () => (await sub.query("SELECT count(*)::int AS n FROM pgconvey.subscriber_table WHERE state = 'ok'")).rows[0].n === 2, 60_000);
      await prov.query(`INSERT INTO "a.b".c VALUES (10, 'ab.c later'); UPDATE a."b.c" SET v = 'a.bc changed' WHERE id = 2; DELETE FROM a."b.c" WHERE id = 5`);
      const tick = (await prov.query<{ t: string }>("SELECT pgconvey.force_tick('q')::text AS t")).rows[0]!.t;
      await waitFor(`tick ${tick} applied`, async () => BigInt((await sub.query('SELECT completed_tick FROM pgconvey.subscription')).rows[0].completed_tick) >= BigInt(tick), 30_000);
      for (const table of ['"a.b".c', 'a."b.c"']) expect(await rows(sub, table), table).toEqual(await rows(prov, table));
      expect((await rows(sub, '"a.b".c')).map((r) => r.id)).toEqual([1, 2, 3, 10]);
      expect((await rows(sub, 'a."b.c"')).map((r) => r.v)).toEqual(['a.bc 1', 'a.bc changed', 'a.bc 3', 'a.bc 4']);
    } finally {
      stop.abort();
      await Promise.all(daemons);
      await prov.end();
      await sub.end();
    }
  });
});
