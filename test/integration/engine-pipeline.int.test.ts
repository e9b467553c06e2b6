/**
 * engine/pipeline.ts: several statements in one round trip — each one's row
 * count in order; at an error the rest (a COMMIT among them) is skipped and
 * the transaction is left aborted; a named statement not prepared on the
 * client is refused without sending anything (the client stays usable); and
 * the client's prepared-statement cache stays true for the next statement.
 */
import { describe, expect, it } from 'vitest';
import { pipelineReady, runPipeline } from '../../src/engine/pipeline.js';
import { freshDatabase } from '../harness/databases.js';
import { targetServer } from '../harness/servers.js';

describe('a pipeline of statements', () => {
  it('runs in order, skips the rest after an error, refuses an unprepared statement', async () => {
    const db = await freshDatabase(targetServer(), 'pipeline');
    const c = await db.connect();
    try {
      await c.query('CREATE TABLE t (id int PRIMARY KEY, v text)');
      const insert = { name: 'pl_insert', text: 'INSERT INTO t SELECT x, $1 FROM pg_catalog.generate_series(1, 3) x ON CONFLICT DO NOTHING' };
      expect(pipelineReady(c, insert.name, insert.text)).toBe(false);
      await expect(runPipeline(c, [{ ...insert, values: ['a'] }])).rejects.toThrow(/not prepared/);
      expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1); // the client goes on
      await c.query({ ...insert, values: ['a'] });
      expect(pipelineReady(c, insert.name, insert.text)).toBe(true);
      await c.query('TRUNCATE t');

      await c.query('BEGIN');
      const counts = await runPipeline(c, [{ ...insert, values: ['b'] }, { text: "UPDATE t SET v = 'c' WHERE id > 1" }, { text: 'DELETE FROM t WHERE id = 3' }, { text: 'COMMIT' }]);
      expect(counts).toEqual([3, 2, 1, 0]);
      expect((await c.query('SELECT id, v FROM t ORDER BY id')).rows).toEqual([{ id: 1, v: 'b' }, { id: 2, v: 'c' }]);

      await c.query('BEGIN');
      await expect(runPipeline(c, [{ text: "UPDATE t SET v = 'd'" }, { text: 'INSERT INTO t VALUES (1, NULL)' }, { text: "UPDATE t SET v = 'e'" }, { text: 'COMMIT' }])).rejects.toMatchObject({ code: '23505' });
      await expect(c.query('SELECT 1')).rejects.toMatchObject({ code: '25P02' }); // aborted: COMMIT did not run
      await c.query('ROLLBACK');
      expect((await c.query('SELECT id, v FROM t ORDER BY id')).rows).toEqual([{ id: 1, v: 'b' }, { id: 2, v: 'c' }]);
      // The named statement is still prepared, and the cache says so.
      await c.query('BEGIN');
      expect(await runPipeline(c, [{ ...insert, values: ['f'] }, { text: 'COMMIT' }])).toEqual([1, 0]);
      expect((await c.query('SELECT v FROM t WHERE id = 3')).rows[0].v).toBe('f');
    } finally {
      await c.end();
    }
  });
});
