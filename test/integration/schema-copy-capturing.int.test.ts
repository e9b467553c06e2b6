/**
 * A schema copy prepared at apply time (a second copy into one database, a
 * plan not made in this process) dumps the provider while the apply's
 * capture_table groups run there (schedule.ts runs copy_schema beside them):
 * pg_dump's ACCESS SHARE locks do not wait for a capture's open transaction
 * (SHARE ROW EXCLUSIVE, CREATE TRIGGER), and what the dump holds of
 * pgconvey — its schema, the capture triggers committed before it — is never
 * copied: the subscriber gets the tables, no trigger and no pgconvey schema.
 */
import { describe, expect, it } from 'vitest';
import { parseDsn } from '../../src/config/index.js';
import * as engine from '../../src/engine/index.js';
import { dumpArchive, findPgDump, prepareSchemaCopy, releaseArchive, runSchemaCopy } from '../../src/executor/index.js';
import { freshDatabase } from '../harness/databases.js';
import { sourceServer, targetServer } from '../harness/servers.js';

describe('a schema copy dumped while tables are being captured', () => {
  it('does not wait for the capture, and copies none of pgconvey', { timeout: 120_000 }, async () => {
    const pgDump = await findPgDump();
    expect(pgDump, 'pg_dump on this machine').not.toBeNull();
    const [p, s] = [await freshDatabase(sourceServer(), 'scc_p'), await freshDatabase(targetServer(), 'scc_s')];
    const tables = Array.from({ length: 6 }, (_, i) => ({ schema: 'public', table: `t${i}` }));
    await p.query(tables.map((t) => `CREATE TABLE ${t.table} (id int PRIMARY KEY, v text);`).join('\n'));
    const provider = await p.connect();
    const capturing = await p.connect();
    try {
      await engine.installEngine(provider);
      await engine.createQueue(provider, 'q');
      // Captured and committed before the dump: their triggers are in it.
      await engine.addTables(provider, 'q', tables.slice(0, 3));
      // Being captured while the dump runs (a group's transaction, open): holds SHARE ROW EXCLUSIVE on t3..t5.
      await capturing.query('BEGIN');
      await engine.addTables(capturing, 'q', tables.slice(3));
      const held = await p.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE l.mode = 'ShareRowExclusiveLock' AND l.granted AND c.relname IN ('t3', 't4', 't5')",
      );
      expect(held.rows[0]!.n).toBe(3);
      const archive = await dumpArchive(pgDump!, parseDsn(p.dsn));
      let prepared;
      try {
        expect(archive.entries.some((e) => e.type === 'TRIGGER' && e.tag.includes('pgconvey_capture_')), 'the dump has the committed capture triggers').toBe(true);
        prepared = await prepareSchemaCopy(archive, { node: 'new', provider: parseDsn(p.dsn), subscriber: parseDsn(s.dsn), tables, selected: tables, mode: 'all', roles: [] });
      } finally {
        await releaseArchive(archive);
      }
      await capturing.query('COMMIT');
      expect(prepared.problems).toEqual([]);
      expect(prepared.objects.filter((o) => /pgconvey/.test(o.name))).toEqual([]);
      expect(prepared.objects.filter((o) => o.type === 'TABLE').map((o) => o.name).sort()).toEqual(tables.map((t) => `TABLE public.${t.table}`));
      await runSchemaCopy(parseDsn(s.dsn), 'new', prepared, { dryRun: false });
      const there = await s.query<{ tables: number; triggers: number; schema: boolean }>(
        `SELECT (SELECT count(*)::int FROM pg_tables WHERE schemaname = 'public') AS tables,
                (SELECT count(*)::int FROM pg_trigger WHERE NOT tgisinternal) AS triggers,
                to_regnamespace('pgconvey') IS NOT NULL AS schema`,
      );
      expect(there.rows[0]).toEqual({ tables: 6, triggers: 0, schema: false });
    } finally {
      await capturing.query('ROLLBACK').catch(() => undefined);
      await Promise.all([provider.end(), capturing.end()]);
    }
  });
});
