/**
 * Installing the engine: on the old and the new server, twice (no change the
 * second time), and upgrading an older version in place.
 */
import { describe, expect, it } from 'vitest';
import { ENGINE_CONTENT, ENGINE_SOURCES, ENGINE_VERSION, EngineVersionError, installEngine, installedEngine, installedVersion } from '../../src/engine/index.js';
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
      expect(await installEngine(client)).toEqual({ action: 'installed', from: null, to: ENGINE_VERSION, fromContent: null, toContent: ENGINE_CONTENT });
      expect(await installedEngine(client)).toMatchObject({ version: ENGINE_VERSION, content: ENGINE_CONTENT });
      const before = (await client.query(CATALOG_SNAPSHOT)).rows;
      const xminBefore = (await client.query('SELECT xmin::text AS x FROM pgconvey.engine')).rows[0].x;
      expect(await installEngine(client)).toEqual({ action: 'unchanged', from: ENGINE_VERSION, to: ENGINE_VERSION, fromContent: ENGINE_CONTENT, toContent: ENGINE_CONTENT });
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
      expect(await installEngine(client)).toEqual({ action: 'upgraded', from: 1, to: ENGINE_VERSION, fromContent: null, toContent: ENGINE_CONTENT });
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

  it('upgrades in place an engine of the same migration whose functions differ (a functions.sql-only fix)', async () => {
    const db = await freshDatabase(server);
    const client = await db.connect();
    try {
      // The installed engine: this one with pgconvey.engine_probe() answering 'old'.
      const probe = (answer: string) => `CREATE OR REPLACE FUNCTION pgconvey.engine_probe() RETURNS text LANGUAGE sql AS $$ SELECT '${answer}'::text $$;`;
      const older = { ...ENGINE_SOURCES, functions: `${ENGINE_SOURCES.functions}\n${probe('old')}\n` };
      const installed = await installEngine(client, { sources: older });
      expect(installed).toMatchObject({ action: 'installed', to: ENGINE_VERSION });
      expect(installed.toContent).not.toBe(ENGINE_CONTENT);
      expect((await client.query('SELECT pgconvey.engine_probe() AS v')).rows[0].v).toBe('old');
      const fixed = { ...ENGINE_SOURCES, functions: `${ENGINE_SOURCES.functions}\n${probe('fixed')}\n` };
      const upgraded = await installEngine(client, { sources: fixed });
      expect(upgraded).toMatchObject({ action: 'upgraded', from: ENGINE_VERSION, to: ENGINE_VERSION, fromContent: installed.toContent });
      expect(upgraded.toContent).not.toBe(installed.toContent);
      expect((await client.query('SELECT pgconvey.engine_probe() AS v')).rows[0].v).toBe('fixed');
      expect(await installEngine(client, { sources: fixed })).toMatchObject({ action: 'unchanged' });
      expect((await installedEngine(client))!.upgradedAt).not.toBeNull();
    } finally {
      await client.end();
    }
  });

  it('refuses to downgrade: an engine of a newer migration than the package', async () => {
    const db = await freshDatabase(server);
    const client = await db.connect();
    try {
      await installEngine(client);
      const previous = { ...ENGINE_SOURCES, migrations: ENGINE_SOURCES.migrations.slice(0, -1) };
      const err = await installEngine(client, { sources: previous }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EngineVersionError);
      expect(err).toMatchObject({ code: 'engine_too_new', installed: ENGINE_VERSION, supported: ENGINE_VERSION - 1, hint: expect.stringContaining('never downgrades') });
      expect(await installedEngine(client)).toMatchObject({ version: ENGINE_VERSION, content: ENGINE_CONTENT });
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
