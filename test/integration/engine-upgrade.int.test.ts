/**
 * Upgrading an installed engine in place, under load: the previous released
 * engine (test/fixtures/engine-previous/, the SQL of commit 5d7d1e1: JSON
 * rows, no row shapes) is installed on a provider (old server) and a
 * subscriber (new server), captures changes of several types and leaves them
 * queued; today's installEngine then upgrades both while writers keep
 * writing; today's worker catches up, reading the queued events through
 * legacy_event(). Checked row by row with our own SQL (floats by their
 * float8send bits), and against the writers' own count of committed
 * transactions: nothing lost, nothing doubled.
 *
 * Old-format events keep the previous engine's limits (a json null at the
 * top of a column and arrays' lower bounds did not survive to_json), so the
 * writers use those values only once they see the new engine installed.
 */
import { readFileSync, readdirSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as engine from '../../src/engine/index.js';
import { type TestDatabase, freshDatabase } from '../harness/databases.js';
import { createRng, testSeed, type Rng } from '../harness/random.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const PREVIOUS = new URL('../fixtures/engine-previous/', import.meta.url);
const WRITERS = 4;

/** Installs the previous engine as its install.ts did: its migrations, its functions, version 5 recorded. */
async function installPreviousEngine(client: pg.Client): Promise<void> {
  const files = readdirSync(PREVIOUS).filter((f) => /^\d{4}_.+\.sql$/.test(f)).sort();
  await client.query('BEGIN');
  await client.query("SET LOCAL client_min_messages = 'warning'");
  for (const f of files) await client.query(readFileSync(new URL(f, PREVIOUS), 'utf8'));
  await client.query(readFileSync(new URL('functions.sql', PREVIOUS), 'utf8'));
  await client.query('INSERT INTO pgconvey.engine (version) VALUES ($1)', [Number(files[files.length - 1]!.slice(0, 4))]);
  await client.query('COMMIT');
}

const schema = (generated: boolean) => `
  CREATE TABLE public.vals (
    id bigint PRIMARY KEY,
    ts timestamptz, j json, jb jsonb, ia integer[], ta text[],
    f8 double precision, f4 real, n numeric, b bytea, iv interval, note text
    ${generated ? ', g bigint GENERATED ALWAYS AS (id * 2 + 1) STORED' : ''}
  );
  CREATE TABLE public.ledger (writer integer, seq integer, PRIMARY KEY (writer, seq));
  CREATE TABLE public.tr (id integer PRIMARY KEY, v text);
`;

/** Our own reading of a table: every column as text under fixed settings, floats as their bits. */
async function rowsOf(client: pg.Client, table: string): Promise<string[]> {
  await client.query("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3");
  const cols = (await client.query<{ name: string; type: string }>(
    `SELECT a.attname AS name, a.atttypid::regtype::text AS type FROM pg_attribute a
      WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [table],
  )).rows;
  const expr = cols.map((c) =>
    c.type === 'double precision' ? `encode(float8send("${c.name}"), 'hex')` : c.type === 'real' ? `encode(float4send("${c.name}"), 'hex')` : c.type === 'bytea' ? `encode("${c.name}", 'hex')` : `"${c.name}"::text`,
  );
  const { rows } = await client.query<{ r: string }>(`SELECT json_build_array(${expr.join(', ')})::text AS r FROM ${table}`);
  // Sorted here: the two servers' collations may order text differently.
  return rows.map((r) => r.r).sort();
}

const FLOATS = ['0.1', '-0', '1e300', '5e-324', 'NaN', '-Infinity', '3.141592653589793', '2.2250738585072014e-308'];

/** Values of one row; `upgraded` lets in what the old JSON format lost. */
function rowValues(rng: Rng, upgraded: boolean): unknown[] {
  const json = rng.pick(upgraded ? ['null', '{"a": null, "b": [1, 2.50]}', '"x"', '[]', null] : ['{"a": null, "b": [1, 2.50]}', '"x"', '[]', '{"k": "ü"}', null]);
  const arr = rng.pick(upgraded ? ['{1,NULL,3}', '[0:2]={7,8,9}', '{}', '{{1,2},{3,4}}', null] : ['{1,NULL,3}', '{}', '{{1,2},{3,4}}', null]);
  return [
    rng.pick(['2024-02-29 23:59:59.999999+00', '1999-12-31 19:00:00-05', 'infinity', '0044-03-15 12:00:00 BC', null]),
    json,
    rng.pick(upgraded ? ['null', '{"z": 1, "a": null}', '[true, false]', null] : ['{"z": 1, "a": null}', '[true, false]', '1.0', null]),
    arr,
    rng.pick(['{a,"b c",NULL,"NULL"}', '{}', null]),
    rng.pick([...FLOATS, null]),
    rng.pick(['0.1', '-0', '3.4028235e38', 'NaN', null]),
    rng.pick(['0', '-1.500', '123456789012345678901234567890.000001', 'NaN', null]),
    rng.pick(['\\x00ff10', '\\x', null]),
    rng.pick(['1 year 2 mons -3 days 04:05:06.789', '-00:00:01', null]),
    rng.pick(["it's", 'tab\there', '', null]),
  ];
}

const INSERT = 'INSERT INTO public.vals (id, ts, j, jb, ia, ta, f8, f4, n, b, iv, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)';
const UPDATE = 'UPDATE public.vals SET ts = $2, j = $3, jb = $4, ia = $5, ta = $6, f8 = $7, f4 = $8, n = $9, b = $10, iv = $11, note = $12 WHERE id = $1';

interface Writer {
  committed: number;
  committedAfterUpgrade: number;
  errors: Map<string, number>;
  done: Promise<void>;
}

/** A pgbench-like writer: transactions of a few inserts, updates (some changing the key) and deletes of its own rows, each with a ledger row. */
function startWriter(db: TestDatabase, w: number, seed: number, stop: { stopped: boolean }): Writer {
  const rng = createRng(seed + w);
  const live: number[] = [];
  let next = w * 1_000_000;
  const writer: Writer = { committed: 0, committedAfterUpgrade: 0, errors: new Map(), done: Promise.resolve() };
  writer.done = (async () => {
    const c = await db.connect();
    // Sessions unlike the engine's: the captured values must not depend on them.
    await c.query("SET TimeZone = 'America/St_Johns'; SET DateStyle = 'SQL, DMY'; SET IntervalStyle = 'sql_standard'; SET extra_float_digits = 0; SET bytea_output = 'escape'");
    try {
      let seq = 0;
      while (!stop.stopped) {
        const pending = [...live];
        let ids = pending;
        try {
          await c.query('BEGIN');
          // Seen as installed, the new engine captures this transaction's rows (the upgrade locks the tables until it commits).
          const upgraded = (await c.query("SELECT (SELECT to_jsonb(e) ->> 'content' FROM pgconvey.engine e) IS NOT NULL AS u")).rows[0].u as boolean;
          for (let k = rng.int(1, 4); k > 0; k--) {
            const op = rng.int(0, 99);
            if (op < 45 || ids.length < 5) {
              const id = ++next;
              await c.query(INSERT, [id, ...rowValues(rng, upgraded)]);
              ids = [...ids, id];
            } else if (op < 85) {
              const i = rng.int(0, ids.length - 1);
              if (rng.chance(0.15)) {
                const id = ++next;
                await c.query('UPDATE public.vals SET id = $2 WHERE id = $1', [ids[i], id]);
                ids = ids.map((x, j) => (j === i ? id : x));
              } else await c.query(UPDATE, [ids[i], ...rowValues(rng, upgraded)]);
            } else {
              const i = rng.int(0, ids.length - 1);
              await c.query('DELETE FROM public.vals WHERE id = $1', [ids[i]]);
              ids = ids.filter((_x, j) => j !== i);
            }
          }
          await c.query('INSERT INTO public.ledger VALUES ($1, $2)', [w, seq + 1]);
          await c.query('COMMIT');
          seq++;
          live.splice(0, live.length, ...ids);
          writer.committed++;
          if (upgraded) writer.committedAfterUpgrade++;
        } catch (err) {
          await c.query('ROLLBACK').catch(() => undefined);
          const code = `${(err as { code?: string }).code ?? ''} ${(err as Error).message}`.slice(0, 160);
          writer.errors.set(code, (writer.errors.get(code) ?? 0) + 1);
        }
      }
    } finally {
      await c.end();
    }
  })();
  return writer;
}

async function waitFor(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('engine upgrade in place from the previous release, under load', () => {
  let pdb: TestDatabase;
  let sdb: TestDatabase;
  let provider: pg.Client;
  let subscriber: pg.Client;
  const generated = sourceServer().major >= 12;

  beforeAll(async () => {
    pdb = await freshDatabase(sourceServer(), 'upg_prov');
    sdb = await freshDatabase(targetServer(), 'upg_sub');
    provider = await pdb.connect();
    subscriber = await sdb.connect();
    for (const c of [provider, subscriber]) {
      await c.query(schema(generated));
      await installPreviousEngine(c);
    }
    await provider.query("SELECT pgconvey.create_queue('q')");
    for (const t of ['vals', 'ledger', 'tr']) await provider.query("SELECT pgconvey.add_table('q', 'public', $1)", [t]);
    await engine.subscribe(provider, subscriber, 'q', 'sub');
    for (const t of ['vals', 'ledger', 'tr']) await engine.addSubscriberTable(subscriber, 'q', 'sub', 'public', t, 'ok');
  });

  afterAll(async () => {
    await provider?.end();
    await subscriber?.end();
  });

  it('replicates everything: old-format events queued before, writes during and after the upgrade', async () => {
    const seed = testSeed();
    console.log(`[engine-upgrade] seed ${seed} (PGCONVEY_SEED=${seed} replays it)`);
    expect(await engine.installedEngine(provider)).toMatchObject({ version: 5, content: null });

    // Old-format events, in several ticks and after the last one, a TRUNCATE among them.
    const rng = createRng(seed);
    for (let i = 1; i <= 40; i++) await provider.query(INSERT, [i, ...rowValues(rng, false)]);
    await provider.query("INSERT INTO public.tr SELECT g, 'v' || g FROM generate_series(1, 20) g");
    await engine.forceTick(provider, 'q');
    await provider.query('BEGIN');
    await provider.query("UPDATE public.tr SET v = 'changed' WHERE id <= 5");
    await provider.query('TRUNCATE public.tr');
    await provider.query("INSERT INTO public.tr VALUES (100, 'after truncate'), (101, NULL)");
    await provider.query('COMMIT');
    for (let i = 1; i <= 40; i += 3) await provider.query(UPDATE, [i, ...rowValues(rng, false)]);
    await provider.query('UPDATE public.vals SET id = id + 500 WHERE id IN (2, 4)');
    await provider.query('DELETE FROM public.vals WHERE id IN (7, 8)');
    await engine.forceTick(provider, 'q');
    for (let i = 41; i <= 60; i++) await provider.query(INSERT, [i, ...rowValues(rng, false)]);

    // Writers, and a ticker (SQL both engines have), across the upgrade.
    const stop = { stopped: false };
    const writers = Array.from({ length: WRITERS }, (_x, w) => startWriter(pdb, w + 1, seed, stop));
    const ticker = await pdb.connect();
    const ticking = (async () => {
      while (!stop.stopped) {
        await engine.forceTick(ticker, 'q');
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    try {
      await waitFor('writes on the previous engine', () => writers.reduce((n, w) => n + w.committed, 0) >= 300);

      // The upgrade, while they write: the provider, then the subscriber (as apply runs it).
      const admin = await pdb.connect();
      const t0 = Date.now();
      const up = await engine.installEngine(admin);
      const upgradeMs = Date.now() - t0;
      await admin.end();
      expect(up).toMatchObject({ action: 'upgraded', from: 5, to: engine.ENGINE_VERSION, fromContent: null, toContent: engine.ENGINE_CONTENT });
      expect(await engine.installEngine(subscriber)).toMatchObject({ action: 'upgraded', from: 5, toContent: engine.ENGINE_CONTENT });
      console.log(`[engine-upgrade] provider upgraded in ${upgradeMs} ms under ${WRITERS} writers`);
      // The upgrade gave the installed capture functions to the capture role (they ran as the installer before).
      const owners = await provider.query<{ owner: string }>(
        `SELECT DISTINCT pg_catalog.pg_get_userbyid(p.proowner) AS owner FROM pg_catalog.pg_proc p
          WHERE p.pronamespace = 'pgconvey'::regnamespace AND p.proname ~ '^capture_(truncate_)?[0-9]+$'`,
      );
      expect(owners.rows.map((r) => r.owner)).toEqual([(await provider.query('SELECT pgconvey.capture_role_name() AS r')).rows[0].r]);

      // Old-format events are still queued, and today's worker starts on them while the writers go on.
      const legacy = await provider.query<{ n: number }>(
        `SELECT (SELECT count(*) FROM pgconvey.event_1_0 WHERE ev_shape IS NULL) + (SELECT count(*) FROM pgconvey.event_1_1 WHERE ev_shape IS NULL)
              + (SELECT count(*) FROM pgconvey.event_1_2 WHERE ev_shape IS NULL) AS n`,
      );
      expect(Number(legacy.rows[0]!.n)).toBeGreaterThan(100);
      await waitFor('writes on the new engine', () => writers.reduce((n, w) => n + w.committedAfterUpgrade, 0) >= 300).catch((err: unknown) => {
        throw new Error(`${(err as Error).message}; writers' errors: ${JSON.stringify(writers.map((w) => Object.fromEntries(w.errors)))}`);
      });
    } finally {
      stop.stopped = true;
      await Promise.all(writers.map((w) => w.done));
      await ticking;
      await ticker.end();
    }
    const errors = new Map<string, number>();
    for (const w of writers) for (const [code, n] of w.errors) errors.set(code, (errors.get(code) ?? 0) + n);
    console.log(`[engine-upgrade] ${writers.reduce((n, w) => n + w.committed, 0)} writer transactions committed; rolled back: ${JSON.stringify(Object.fromEntries(errors))}`);
    // No writer transaction failed: the upgrade waited for them, they waited for it.
    expect(Object.fromEntries(errors)).toEqual({});

    // Today's worker, until it has applied the last tick.
    const wp = await pdb.connect();
    const ws = await sdb.connect();
    const worker = new engine.ApplyWorker(wp, ws, { queue: 'q', consumer: 'sub' });
    await worker.start();
    try {
      const last = await engine.forceTick(provider, 'q');
      await waitFor('the worker to catch up', async () => {
        const r = await worker.step();
        if (r.kind !== 'idle') return false;
        const pos = await subscriber.query("SELECT completed_tick::text AS t FROM pgconvey.subscription WHERE queue_name = 'q'");
        return BigInt(pos.rows[0].t) >= BigInt(last);
      }, 120_000);
    } finally {
      await wp.end();
      await ws.end();
    }

    for (const t of ['public.vals', 'public.ledger', 'public.tr']) {
      const [a, b] = [await rowsOf(provider, t), await rowsOf(subscriber, t)];
      expect(b.length, t).toBe(a.length);
      expect(b.filter((r, i) => r !== a[i]).slice(0, 5), t).toEqual([]);
    }
    // The ledger holds one row per committed writer transaction, on both sides.
    const committed = writers.reduce((n, w) => n + w.committed, 0);
    expect(Number((await subscriber.query('SELECT count(*) AS n FROM public.ledger')).rows[0].n)).toBe(committed);
    expect((await subscriber.query('SELECT id, v FROM public.tr ORDER BY id')).rows).toEqual([{ id: 100, v: 'after truncate' }, { id: 101, v: null }]);
    // What the old format could not carry arrived after the upgrade.
    expect(Number((await subscriber.query("SELECT count(*) AS n FROM public.vals WHERE j::text = 'null'")).rows[0].n)).toBeGreaterThan(0);
  }, 300_000);
});
