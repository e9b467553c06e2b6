/**
 * Installing the engine: on the old and the new server, twice (no change the
 * second time), and upgrading an older version in place.
 */
import { describe, expect, it } from 'vitest';
import { ENGINE_VERSION, EngineVersionError, installEngine, installedVersion } from '../../src/engine/index.js';
import { freshDatabase } from '../harness/databases.js';
import { servers } from '../harness/servers.js';

const CATALOG_SNAPSHOT = `
  SELECT p.proname || ':' || md5(p.prosrc) AS what FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'pgconvey'
  UNION ALL SELECT c.relname || ':' || c.relkind::text || ':' || c.oid::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pgconvey'
  ORDER BY 1`;

describe.each(servers().map((s) => [s.major, s] as const))('engine install on PostgreSQL %i', (_major, server) => {
  it('installs, and installing again changes nothing', async () => {
    const db = await freshDatabase(server);
    const client = await db.connect();
    try {
      expect(await installedVersion(client)).toBeNull();
      expect(await installEngine(client)).toEqual({ action: 'installed', from: null, to: ENGINE_VERSION });
      const before = (await client.query(CATALOG_SNAPSHOT)).rows;
      const xminBefore = (await client.query('SELECT xmin::text AS x FROM pgconvey.engine')).rows[0].x;
      expect(await installEngine(client)).toEqual({ action: 'unchanged', from: ENGINE_VERSION, to: ENGINE_VERSION });
      expect((await client.query(CATALOG_SNAPSHOT)).rows).toEqual(before);
      expect((await client.query('SELECT xmin::text AS x FROM pgconvey.engine')).rows[0].x).toBe(xminBefore);
    } finally {
      await client.end();
    }
  });

  it('upgrades an older engine in place, keeping its data', async () => {
    const db = await freshDatabase(server);
    const client = await db.connect();
    try {
      expect(await installEngine(client, 1)).toMatchObject({ action: 'installed', to: 1 });
      await client.query("SELECT pgconvey.create_queue('q')");
      expect(await installEngine(client)).toEqual({ action: 'upgraded', from: 1, to: ENGINE_VERSION });
      expect((await client.query("SELECT count(*)::int AS n FROM pgconvey.queue WHERE queue_name = 'q'")).rows[0].n).toBe(1);
      expect((await client.query("SELECT to_regclass('pgconvey.subscription') IS NOT NULL AS ok")).rows[0].ok).toBe(true);
    } finally {
      await client.end();
    }
  });

  it('refuses an engine newer than itself', async () => {
    const db = await freshDatabase(server);
    const client = await db.connect();
    try {
      await installEngine(client);
      await client.query('UPDATE pgconvey.engine SET version = version + 1');
      await expect(installEngine(client)).rejects.toBeInstanceOf(EngineVersionError);
    } finally {
      await client.end();
    }
  });

  it('two installs at once serialize on the advisory lock', async () => {
    const db = await freshDatabase(server);
    const [a, b] = [await db.connect(), await db.connect()];
    try {
      const results = await Promise.all([installEngine(a), installEngine(b)]);
      expect(results.map((r) => r.action).sort()).toEqual(['installed', 'unchanged']);
    } finally {
      await a.end();
      await b.end();
    }
  });
});
