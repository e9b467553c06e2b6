/**
 * Values of every common type family, NULLs in every column, values over
 * 1 MB, and names that need quoting survive replication unchanged — checked
 * against the provider as text, whatever DateStyle, IntervalStyle or
 * extra_float_digits the writing session used.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as engine from '../../src/engine/index.js';
import { diffTable } from '../harness/compare.js';
import { freshDatabase } from '../harness/databases.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const SCHEMA = `
  CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');
  CREATE DOMAIN public.positive_int AS integer CHECK (VALUE > 0);
  CREATE TYPE public.address AS (street text, zip text, lines text[]);
  CREATE TABLE public.all_types (
    id int PRIMARY KEY,
    i2 smallint, i4 integer, i8 bigint,
    num numeric, num_big numeric(40, 20),
    f4 real, f8 double precision,
    t text, vc varchar(20), ch char(5),
    b boolean, ba bytea,
    int_arr int[], text_arr text[], num_arr2 numeric[][],
    j json, jb jsonb,
    ts timestamp, tstz timestamptz, d date, tm time, tmtz timetz, iv interval,
    d_arr date[], tstz_range tstzrange,
    u uuid, ip inet, net cidr, mac macaddr,
    m public.mood, m_arr public.mood[],
    dom public.positive_int,
    addr public.address,
    bits bit varying(16), x xml, mny money
  );
  CREATE SCHEMA "Odd Schema";
  CREATE TABLE "Odd Schema"."Order ""Items""" ("select" int, "Mixed Case" text, "with space" text, "from" text, PRIMARY KEY ("select", "Mixed Case"));
`;

const ROWS = `
  INSERT INTO public.all_types VALUES
  (1, -32768, 2147483647, -9223372036854775808,
   123456789012345678901234567890.123456789012345678901234567890, 12345678901234567890.12345678901234567890,
   3.4028235e38, 1.7976931348623157e308,
   E'quotes '' " \\\\ backslash, unicode: żółć 日本語 🐘, tab\\tnewline\\n', 'varchar', 'ab',
   true, '\\x00ff10deadbeef',
   '{1,NULL,3}', '{"a b","c,d","e\\"f",NULL}', '{{1.5,2},{3,4}}',
   '{"b": 1,   "a": [1, 2, {"c": null}]}', '{"z": 1, "a": {"nested": [true, false]}}',
   '2024-02-29 23:59:59.999999', '2024-06-01 12:00:00+05:30', '2000-01-01', '23:59:59.5', '10:00:00+02', '1 year 2 mons -3 days 04:05:06.789',
   '{2024-01-01,1999-12-31}', '[2024-01-01 00:00:00+00,2024-12-31 00:00:00+00)',
   'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '192.168.100.128/25', '10.1.0.0/16', '08:00:2b:01:02:03',
   'happy', '{sad,ok}', 42, ROW('Main St 1', '12345', ARRAY['a', 'b'])::public.address,
   B'10101', '<a href="x">text &amp; more</a>', 12.34),
  (2, 0, 0, 0, 'NaN', 0, 'NaN', '-Infinity', '', '', '', false, '\\x', '{}', '{}', '{}', '[]', '{}',
   'infinity', '-infinity', '0001-01-01 BC', '00:00', '00:00+00', '0', '{}', 'empty',
   '00000000-0000-0000-0000-000000000000', '::1', '::/0', '00:00:00:00:00:00', 'sad', '{}', 1, ROW(NULL, NULL, NULL)::public.address,
   B'', '<x/>', -0.01),
  (3, NULL, NULL, NULL, NULL, NULL, 'Infinity', 5e-324, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (4, 1, 1, 1, 1, 1, 0.1, 0.1, repeat('x', 1100000), 'big', 'big', true, decode(repeat('ab', 700000), 'hex'),
   NULL, NULL, NULL, NULL, ('{"big": "' || repeat('y', 1200000) || '"}')::jsonb,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
  INSERT INTO "Odd Schema"."Order ""Items""" VALUES (1, 'Ünïcode', 'a b', 'x'), (2, 'it''s', NULL, NULL);
`;

describe('engine: type fidelity and quoting', () => {
  let provider: pg.Client;
  let writer: pg.Client;
  let subscriber: pg.Client;
  let worker: engine.ApplyWorker;

  beforeAll(async () => {
    const pdb = await freshDatabase(sourceServer(), 'types_p');
    const sdb = await freshDatabase(targetServer(), 'types_s');
    provider = await pdb.connect();
    writer = await pdb.connect();
    subscriber = await sdb.connect();
    for (const c of [provider, subscriber]) {
      await c.query(SCHEMA);
      await engine.installEngine(c);
    }
    await engine.createQueue(provider, 'q');
    await engine.addTable(provider, 'q', 'public', 'all_types');
    await engine.addTable(provider, 'q', 'Odd Schema', 'Order "Items"');
    await engine.subscribe(provider, subscriber, 'q', 's');
    await engine.addSubscriberTable(subscriber, 'q', 's', 'public', 'all_types');
    await engine.addSubscriberTable(subscriber, 'q', 's', 'Odd Schema', 'Order "Items"');
    worker = new engine.ApplyWorker(provider, subscriber, { queue: 'q', consumer: 's' });
    await worker.start();
  });

  afterAll(async () => {
    await provider?.end();
    await writer?.end();
    await subscriber?.end();
  });

  async function sync(): Promise<void> {
    await engine.forceTick(provider, 'q');
    while ((await worker.step()).kind !== 'idle');
  }

  async function expectSame(): Promise<void> {
    for (const [t, key] of [['public.all_types', ['id']], ['"Odd Schema"."Order ""Items"""', ['select', 'Mixed Case']]] as const) {
      const d = await diffTable(provider, subscriber, t, [...key]);
      expect(d.missing.map((r) => r.slice(0, 300)), t).toEqual([]);
      expect(d.extra.map((r) => r.slice(0, 300)), t).toEqual([]);
      expect(d.subscriberRows).toBe(d.providerRows);
    }
  }

  it('inserts keep every value, with the writer using unusual session settings', async () => {
    await writer.query("SET DateStyle = 'SQL, DMY'; SET IntervalStyle = 'sql_standard'; SET extra_float_digits = -3; SET bytea_output = 'escape'; SET TimeZone = 'Asia/Kolkata'");
    await writer.query(ROWS);
    await sync();
    await expectSame();
    const big = await subscriber.query('SELECT length(t) AS t, length(ba) AS ba, length(jb::text) AS jb FROM public.all_types WHERE id = 4');
    expect(big.rows[0]).toEqual({ t: 1_100_000, ba: 700_000, jb: 1_200_011 });
    const json = await subscriber.query('SELECT j::text AS j FROM public.all_types WHERE id = 1');
    expect(json.rows[0].j).toBe('{"b": 1,   "a": [1, 2, {"c": null}]}');
  });

  it('updates, key changes and deletes keep them too', async () => {
    await writer.query("UPDATE public.all_types SET id = 10, tstz = tstz + interval '1 hour', f8 = f8 / 3 WHERE id = 1");
    await writer.query("UPDATE public.all_types SET i2 = 7 WHERE id = 3");
    await writer.query("UPDATE \"Odd Schema\".\"Order \"\"Items\"\"\" SET \"Mixed Case\" = 'Ñ' WHERE \"select\" = 1");
    await writer.query('DELETE FROM public.all_types WHERE id = 2');
    await sync();
    await expectSame();
  });
});
