/**
 * The engine's functions cannot be turned against the role that installed
 * them: a role that may create objects in a schema on the search path
 * (every role on PG ≤ 14's public) cannot shadow an operator or function the
 * ticker or the capture use, and a table owner's cast on their own type is
 * never called by the capture (which runs as the installer). Both attacks
 * made the attacker superuser on the engine before row text and pinned
 * search paths.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as engine from '../../src/engine/index.js';
import { freshDatabase, type TestDatabase } from '../harness/databases.js';
import { sourceServer } from '../harness/servers.js';

describe('engine security', () => {
  let db: TestDatabase;
  let admin: pg.Client;
  const suffix = Math.random().toString(36).slice(2, 8);
  const shadow = `shadow_${suffix}`;
  const owner = `owner_${suffix}`;

  async function as(role: string, sql: string): Promise<void> {
    const c = new pg.Client({ ...db.config, user: role });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  }
  const isSuper = async (role: string) => (await admin.query('SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = $1', [role])).rows[0].rolsuper as boolean;

  beforeAll(async () => {
    db = await freshDatabase(sourceServer(), 'sec');
    admin = await db.connect();
    await engine.installEngine(admin);
    await engine.createQueue(admin, 'q');
    await admin.query(`CREATE ROLE ${shadow} LOGIN; CREATE ROLE ${owner} LOGIN; GRANT CREATE ON SCHEMA public TO ${shadow}, ${owner}`);
  });
  afterAll(async () => {
    await admin.query(`DROP OWNED BY ${shadow}, ${owner} CASCADE`).catch(() => undefined);
    await admin.end();
    const c = new pg.Client({ ...db.config, database: 'postgres' });
    await c.connect();
    await c.query(`DROP ROLE IF EXISTS ${shadow}; DROP ROLE IF EXISTS ${owner}`).catch(() => undefined);
    await c.end();
  });

  it('an operator or function shadowed in public does not run as the ticker, capture or worker', async () => {
    // unknown || integer has no exact match in pg_catalog, so a public.||(text, integer) would win;
    // format(text, text) is a closer match than pg_catalog.format(text, VARIADIC "any").
    await as(
      shadow,
      `CREATE FUNCTION public.evil_cat(text, integer) RETURNS text LANGUAGE plpgsql AS $$
         BEGIN BEGIN EXECUTE 'ALTER ROLE ${shadow} SUPERUSER'; EXCEPTION WHEN others THEN NULL; END; RETURN $1 OPERATOR(pg_catalog.||) $2::text; END $$;
       CREATE OPERATOR public.|| (LEFTARG = text, RIGHTARG = integer, PROCEDURE = public.evil_cat);
       CREATE FUNCTION public.format(text, text) RETURNS text LANGUAGE plpgsql AS $$
         BEGIN BEGIN EXECUTE 'ALTER ROLE ${shadow} SUPERUSER'; EXCEPTION WHEN others THEN NULL; END; RETURN pg_catalog.format($1, $2); END $$;`,
    );
    await admin.query('CREATE TABLE public.shadowed (id int PRIMARY KEY, v text)');
    await engine.addTable(admin, 'q', 'public', 'shadowed');
    await engine.registerConsumer(admin, 'q', 'c1');
    await admin.query("INSERT INTO public.shadowed VALUES (1, 'a')");
    await engine.forceTick(admin, 'q');
    await engine.tick(admin, 'q');
    await engine.maintainQueue(admin, 'q');
    const batch = (await engine.nextBatch(admin, 'q', 'c1', 1000))!;
    let events = 0;
    await engine.readBatch(admin, batch, null, async (e) => void (events += e.length));
    await engine.finishBatch(admin, 'q', 'c1', batch.endTick);
    expect(events).toBe(1);
    expect(await isSuper(shadow)).toBe(false);
  });

  it("a table owner's cast to json on their own type is never called by the capture", async () => {
    await admin.query(`CREATE TABLE public.owned (id int PRIMARY KEY, v text); ALTER TABLE public.owned OWNER TO ${owner}`);
    await engine.addTable(admin, 'q', 'public', 'owned');
    await engine.registerConsumer(admin, 'q', 'c2');
    // The owner adds a column of a type they own, with a cast to json that tries to escalate.
    await as(
      owner,
      `CREATE TYPE public.mood AS ENUM ('ok', 'bad');
       CREATE FUNCTION public.mood_json(public.mood) RETURNS json LANGUAGE plpgsql AS $$
         BEGIN BEGIN EXECUTE 'ALTER ROLE ${owner} SUPERUSER'; EXCEPTION WHEN others THEN NULL; END; RETURN '"pwned"'::json; END $$;
       CREATE CAST (public.mood AS json) WITH FUNCTION public.mood_json(public.mood);
       ALTER TABLE public.owned ADD COLUMN m public.mood;
       INSERT INTO public.owned VALUES (1, 'x', 'bad');`,
    );
    expect(await isSuper(owner)).toBe(false);
    await engine.forceTick(admin, 'q');
    const batch = (await engine.nextBatch(admin, 'q', 'c2', 1000))!;
    const seen: engine.QueueEvent[] = [];
    await engine.readBatch(admin, batch, null, async (e) => void seen.push(...e));
    await engine.finishBatch(admin, 'q', 'c2', batch.endTick);
    expect(seen.filter((e) => e.op === 'I').map((e) => e.data)).toContain('(1,x,bad)');
    expect(await isSuper(owner)).toBe(false);
  });
});
