/**
 * The type catalog of the randomized exactness test: every built-in type
 * family, domains, composites, enums, ranges, multiranges and the extension
 * types the embedded binaries ship, each with a generator of SQL literals
 * (edge values included) and, for types that can be keys or carry a unique
 * index, an injective literal of an integer. Features known to be broken can
 * be excluded by their tag (see features.ts).
 */
import type { Rng } from '../random.js';

/** What both servers of the pair offer. */
export interface Environment {
  sourceMajor: number;
  targetMajor: number;
  /** Collations present on both servers (beyond "default"). */
  collations: string[];
  /** Extensions available on both servers. */
  extensions: string[];
}

export interface TypeSpec {
  /** Short id used in column names and reports. */
  id: string;
  /** The column type as SQL. */
  sql: string;
  /** Lowest major both servers must have. */
  minMajor?: number;
  /** Prelude objects the type needs (see PRELUDE). */
  needs?: string[];
  /** Feature tags of the type itself (excluding one drops the type). */
  features?: string[];
  /** A SQL literal (or expression) of a random value; `f` says which value features are allowed. */
  gen(r: Rng, allowed: (feature: string) => boolean, env: Environment): string;
  /** Compared by its binary send form (floats: -0, NaN payloads and every bit). */
  send?: 'float4send' | 'float8send';
  /** Injective literal for integer n ≥ 0: usable as a key or unique-index column. `variant` picks one of several spellings of the same value. */
  key?(n: number, variant: number): string;
  /** Feature tags when the type is part of a key or unique index. */
  keyFeatures?: string[];
  /** Allowed in an expression unique index: the expression over the column `c`. */
  uniqueExpression?(c: string): string;
}

/** Prelude objects: created on both servers before the tables (in this order). */
export const PRELUDE: Record<string, { sql: string; extension?: string; minMajor?: number }> = {
  mood: { sql: "CREATE TYPE public.x_mood AS ENUM ('sad', 'ok', 'happy', 'with space', 'ünï \"q\"')" },
  posint: { sql: 'CREATE DOMAIN public.x_posint AS integer CHECK (VALUE > 0)' },
  shorttext: { sql: 'CREATE DOMAIN public.x_shorttext AS text COLLATE "C" CHECK (length(VALUE) < 40)' },
  intlist: { sql: 'CREATE DOMAIN public.x_intlist AS integer[] CHECK (cardinality(VALUE) < 50)' },
  addr: { sql: 'CREATE TYPE public.x_addr AS (street text, zip integer, tags text[], at timestamptz, w double precision)' },
  nested: { sql: 'CREATE TYPE public.x_nested AS (a public.x_addr, m public.x_mood, n numeric)', minMajor: 10 },
  citext: { sql: 'CREATE EXTENSION IF NOT EXISTS citext', extension: 'citext' },
  hstore: { sql: 'CREATE EXTENSION IF NOT EXISTS hstore', extension: 'hstore' },
  ltree: { sql: 'CREATE EXTENSION IF NOT EXISTS ltree', extension: 'ltree' },
};

/** Which prelude objects an object depends on. */
export const PRELUDE_DEPS: Record<string, string[]> = { nested: ['addr', 'mood'] };

// ---------- literal helpers ----------

export function lit(text: string): string {
  return text.includes('\\') ? `E'${text.replace(/\\/g, '\\\\').replace(/'/g, "''")}'` : `'${text.replace(/'/g, "''")}'`;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

function randomText(r: Rng, maxLen = 20): string {
  const pieces = ['a', 'Z', ' ', "'", '"', '\\', ',', '{', '}', '(', ')', 'ż', 'ó', '日本', '🐘', '\t', '\n', 'NULL', 'é', 'ß', '%', '_', '<', '&', 'x'];
  let s = '';
  const n = r.int(0, maxLen);
  for (let i = 0; i < n; i++) s += r.chance(0.5) ? String.fromCharCode(97 + r.int(0, 25)) : r.pick(pieces);
  return s;
}

function asciiText(r: Rng, maxLen: number): string {
  let s = '';
  const n = r.int(0, maxLen);
  for (let i = 0; i < n; i++) s += String.fromCharCode(32 + r.int(0, 94));
  return s;
}

function randomFloat8(r: Rng): string {
  return r.pick([
    () => 'NaN',
    () => 'Infinity',
    () => '-Infinity',
    () => '-0',
    () => '0',
    () => '5e-324',
    () => '1.7976931348623157e308',
    () => '2.2250738585072014e-308',
    () => '0.1',
    () => String((r.next() - 0.5) * 10 ** r.int(-30, 30)),
    () => String(r.int(-1e6, 1e6) / 7),
  ])();
}

function randomFloat4(r: Rng): string {
  return r.pick([
    () => 'NaN',
    () => 'Infinity',
    () => '-Infinity',
    () => '-0',
    () => '1.4e-45',
    () => '3.4028235e38',
    () => '1.17549435e-38',
    () => '0.1',
    () => String(Math.fround((r.next() - 0.5) * 10 ** r.int(-20, 20))),
  ])();
}

function randomNumeric(r: Rng, allowed: (f: string) => boolean, env: Environment): string {
  const opts = [
    () => 'NaN',
    () => '0',
    () => '-0.000',
    () => '1.50',
    () => '123456789012345678901234567890.123456789012345678901234567890',
    () => `${r.int(-1e9, 1e9)}.${pad(r.int(0, 9999), 4)}`,
    () => `${r.int(-99, 99)}e${r.int(-30, 30)}`,
    () => '0.000000000000000000000000000001',
  ];
  if (Math.min(env.sourceMajor, env.targetMajor) >= 14 && allowed('numeric-infinity')) opts.push(() => r.pick(['Infinity', '-Infinity']));
  return r.pick(opts)();
}

function randomDate(r: Rng): string {
  return r.pick([
    () => 'infinity',
    () => '-infinity',
    () => `${pad(r.int(1, 4713), 4)}-${pad(r.int(1, 12))}-${pad(r.int(1, 28))} BC`,
    () => `${pad(r.int(1, 9999), 4)}-${pad(r.int(1, 12))}-${pad(r.int(1, 28))}`,
    () => '2000-02-29',
    () => '1970-01-01',
  ])();
}

function randomTime(r: Rng): string {
  return r.pick([() => '24:00:00', () => '00:00:00', () => `${pad(r.int(0, 23))}:${pad(r.int(0, 59))}:${pad(r.int(0, 59))}.${pad(r.int(0, 999999), 6)}`])();
}

const OFFSETS = ['+00', 'Z', '+05:30', '+05:45', '-03:30', '+14', '-12', '+12:45', '-00:44:30', '+01', '-09:30'];

function randomTimestamp(r: Rng, withZone: boolean): string {
  const zone = () => (withZone ? r.pick([...OFFSETS, '', ' Europe/Berlin', ' America/St_Johns']) : '');
  return r.pick([
    () => 'infinity',
    () => '-infinity',
    () => `${pad(r.int(1, 4713), 4)}-${pad(r.int(1, 12))}-${pad(r.int(1, 28))} ${pad(r.int(0, 23))}:${pad(r.int(0, 59))}:${pad(r.int(0, 59))}${zone()} BC`,
    () => `${pad(r.int(1, 9999), 4)}-${pad(r.int(1, 12))}-${pad(r.int(1, 28))} ${pad(r.int(0, 23))}:${pad(r.int(0, 59))}:${pad(r.int(0, 59))}.${pad(r.int(0, 999999), 6)}${zone()}`,
    () => `1890-06-01 12:00:00${zone()}`,
    () => `2024-03-31 02:30:00${zone()}`,
  ])();
}

function randomInterval(r: Rng): string {
  return r.pick([
    () => '0',
    () => '1 year 2 mons -3 days 04:05:06.789',
    () => 'P1Y2M3DT4H5M6.5S',
    () => '-1 day +02:03:04',
    () => '178000000 years',
    () => '00:00:00.000001',
    () => '-2 years -3 days -00:00:01',
    () => `${r.int(-1000, 1000)} days ${r.int(-100, 100)} hours ${r.int(0, 59)} minutes`,
    () => '1 mon 2 days 25:00:00',
  ])();
}

function hex(r: Rng, bytes: number): string {
  let s = '';
  for (let i = 0; i < bytes; i++) s += r.int(0, 255).toString(16).padStart(2, '0');
  return s;
}

function uuidOf(h: string): string {
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

function randomJson(r: Rng, allowed: (f: string) => boolean, jsonb: boolean): string {
  const opts = [
    () => '{"b": 1,   "a": [1, 2.50, {"c": null}], "é": "\\u00e9\\n"}',
    () => (allowed('json-whitespace') ? '  [1, 2 ,3 ]  ' : '[1, 2 ,3 ]'),
    () => '{"a": 1, "a": 2}',
    () => '"just a string"',
    () => '1.0e+10',
    () => '-0',
    () => 'true',
    () => '{}',
    () => '[]',
    () => JSON.stringify({ k: randomText(r, 8), n: r.int(-1e9, 1e9), x: [r.chance(0.5), null] }),
    () => `{"deep": ${'['.repeat(20)}1${']'.repeat(20)}}`,
    () => '{"big": 123456789012345678901234567890}',
  ];
  if (allowed('json-null')) opts.push(() => 'null', () => 'null');
  if (jsonb) opts.push(() => '{"a": null, "b": [null]}');
  return lit(r.pick(opts)());
}

function randomGeometry(r: Rng, kind: string): string {
  const c = () => r.pick(['0', '1.5', '-2', '0.1', '1e-10', '123456.789', String(r.int(-100, 100) / 4)]);
  const p = () => `(${c()},${c()})`;
  switch (kind) {
    case 'point':
      return `(${c()},${c()})`;
    case 'line':
      return r.pick(['{1,-1,0}', '{0,1,-3.5}', '{2.5,0,1}']);
    case 'lseg':
      return `[${p()},${p()}]`;
    case 'box':
      return `${p()},${p()}`;
    case 'path':
      return r.chance(0.5) ? `[${p()},${p()},${p()}]` : `(${p()},${p()})`;
    case 'polygon':
      return `(${p()},${p()},${p()})`;
    default:
      return `<${p()},${r.pick(['1', '0.5', '1e3'])}>`;
  }
}

// ---------- key literal helpers (injective in n) ----------

const BASE_INSTANT = Date.UTC(2020, 0, 1);

/** A timestamptz literal of instant n (seconds plus microseconds), written with one of several offsets. */
function tstzKey(n: number, variant: number): string {
  const ms = BASE_INSTANT + n * 3_600_123;
  const offsetMinutes = [0, 330, -210, 345, 60, -720, 765][variant % 7]!;
  const local = new Date(ms + offsetMinutes * 60_000);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const off = `${sign}${pad(Math.floor(Math.abs(offsetMinutes) / 60))}:${pad(Math.abs(offsetMinutes) % 60)}`;
  return `'${local.toISOString().replace('T', ' ').replace('Z', '')}${pad(n % 1000, 3)}${off}'`;
}

function textKey(n: number): string {
  return `'${['k', 'K', 'ä', ' k', 'Z', 'k-', 'Å'][n % 7]}${n}'`;
}

// ---------- the catalog ----------

const intKey = (scale: bigint, offset: bigint) => (n: number) => String(BigInt(n) * scale + offset);
const fromList = (xs: string[]) => (r: Rng) => lit(r.pick(xs));

export const TYPES: TypeSpec[] = [
  { id: 'int2', sql: 'smallint', gen: (r) => String(r.pick([-32768, 32767, 0, r.int(-32768, 32767)])), key: (n) => String(n - 16000), uniqueExpression: (c) => `(${c} + 1)` },
  { id: 'int4', sql: 'integer', gen: (r) => String(r.pick([-2147483648, 2147483647, 0, r.int(-1e9, 1e9)])), key: intKey(13n, -5000n), uniqueExpression: (c) => `(${c} + 1)` },
  { id: 'int8', sql: 'bigint', gen: (r) => r.pick(['-9223372036854775808', '9223372036854775807', '0', String(r.int(-1e15, 1e15))]), key: intKey(1000000007n, -9000000000000000n), uniqueExpression: (c) => `(${c} - 1)` },
  { id: 'numeric', sql: 'numeric', gen: (r, a, e) => lit(randomNumeric(r, a, e)), key: (n, v) => `'${n}.${['5', '50', '500'][v % 3]}'` },
  { id: 'numeric_12_4', sql: 'numeric(12,4)', gen: (r) => lit(`${r.int(-99999999, 99999999)}.${pad(r.int(0, 9999), 4)}`), key: (n) => `'${n}.25'` },
  { id: 'float4', sql: 'real', send: 'float4send', gen: (r) => lit(randomFloat4(r)) },
  { id: 'float8', sql: 'double precision', send: 'float8send', gen: (r) => lit(randomFloat8(r)) },
  { id: 'money', sql: 'money', gen: (r) => lit(r.pick(['12.34', '-0.01', '0', '92233720368547758.07', '-92233720368547758.08', `${r.int(-1e6, 1e6)}.${pad(r.int(0, 99))}`])), key: (n) => `'${n}.01'`, keyFeatures: ['session-key'] },
  // Large values (TOASTed) are written as expressions, so reproductions stay readable.
  { id: 'text', sql: 'text', gen: (r) => (r.chance(0.05) ? `repeat(${lit(randomText(r, 5) || 'x')}, ${r.int(2500, 12000)}) || ${lit(randomText(r))}` : lit(randomText(r))), key: textKey, uniqueExpression: (c) => `lower(${c})` },
  { id: 'varchar', sql: 'varchar(12)', gen: (r) => lit(randomText(r, 12).slice(0, 12)), key: textKey, uniqueExpression: (c) => `lower(${c})` },
  { id: 'bpchar', sql: 'char(6)', gen: (r) => lit(r.pick(['', 'a', 'ab  ', '   ', 'żółć', 'abcdef'])), key: (n) => `'c${n}'` },
  { id: 'char1', sql: '"char"', gen: (r) => lit(r.pick(['a', 'Z', ' ', '0', '\\'])) },
  { id: 'name', sql: 'name', gen: (r) => lit(asciiText(r, 63)), key: (n) => `'n${n}'` },
  { id: 'bytea', sql: 'bytea', gen: (r) => (r.chance(0.05) ? `pg_catalog.decode(repeat('${hex(r, 7)}', ${r.int(500, 3000)}), 'hex')` : lit(`\\x${hex(r, r.int(0, 12))}`)), key: (n) => lit(`\\x00${n.toString(16).padStart(6, '0')}ff`), keyFeatures: ['session-key'] },
  { id: 'bool', sql: 'boolean', gen: (r) => r.pick(['true', 'false']) },
  { id: 'date', sql: 'date', gen: (r) => lit(randomDate(r)), key: (n) => `'${new Date(BASE_INSTANT + n * 86_400_000).toISOString().slice(0, 10)}'` },
  { id: 'time', sql: 'time', gen: (r) => lit(randomTime(r)), key: (n) => `'${pad(Math.floor(n / 3600) % 24)}:${pad(Math.floor(n / 60) % 60)}:${pad(n % 60)}.${pad(Math.floor(n / 86400), 6)}'` },
  { id: 'timetz', sql: 'time with time zone', gen: (r) => lit(`${randomTime(r)}${r.pick(['+00', '+05:30', '-03:30', '+14', '-12:45'])}`) },
  { id: 'timestamp', sql: 'timestamp', gen: (r) => lit(randomTimestamp(r, false)), key: (n) => tstzKey(n, 0).replace('+00:00', '') },
  { id: 'timestamptz', sql: 'timestamptz', gen: (r) => lit(randomTimestamp(r, true)), key: tstzKey, keyFeatures: ['session-key'] },
  { id: 'timestamp3', sql: 'timestamp(3) with time zone', gen: (r) => lit(randomTimestamp(r, true)) },
  { id: 'interval', sql: 'interval', gen: (r) => lit(randomInterval(r)) },
  { id: 'interval_ym', sql: 'interval year to month', gen: (r) => lit(`${r.int(-100, 100)} years ${r.int(0, 11)} months`) },
  { id: 'uuid', sql: 'uuid', gen: (r) => lit(r.chance(0.1) ? '00000000-0000-0000-0000-000000000000' : uuidOf(hex(r, 16))), key: (n, v) => lit(v % 2 ? uuidOf(n.toString(16).padStart(32, 'a')).toUpperCase() : uuidOf(n.toString(16).padStart(32, 'a'))) },
  { id: 'inet', sql: 'inet', gen: fromList(['192.168.1.5/24', '10.0.0.1', '::ffff:1.2.3.4', '2001:db8::1/64', '::1', '0.0.0.0/0']), key: (n) => `'10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}'` },
  { id: 'cidr', sql: 'cidr', gen: fromList(['10.0.0.0/8', '2001:db8::/32', '192.168.100.128/25', '::/0', '1.2.3.4/32']) },
  { id: 'macaddr', sql: 'macaddr', gen: (r) => lit(hex(r, 6).replace(/(..)(?!$)/g, '$1:')) },
  { id: 'macaddr8', sql: 'macaddr8', gen: (r) => lit(hex(r, 8).replace(/(..)(?!$)/g, '$1:')) },
  { id: 'bit8', sql: 'bit(8)', gen: (r) => lit(Array.from({ length: 8 }, () => r.int(0, 1)).join('')) },
  { id: 'varbit', sql: 'bit varying(20)', gen: (r) => lit(Array.from({ length: r.int(0, 20) }, () => r.int(0, 1)).join('')) },
  { id: 'json', sql: 'json', gen: (r, a) => randomJson(r, a, false) },
  { id: 'jsonb', sql: 'jsonb', gen: (r, a) => randomJson(r, a, true) },
  { id: 'xml', sql: 'xml', gen: fromList(['<a x="1">t &amp; u</a>', 'just text', '<r><s/><t>ż</t></r>', '<a/><b/>', '']) },
  { id: 'tsvector', sql: 'tsvector', gen: fromList(["'a':1A 'b' 'c d':2,3", '', "'ż':5C 'x'", 'fat cat sat']) },
  { id: 'tsquery', sql: 'tsquery', gen: fromList(["'a' & ( 'b' | !'c' )", 'a <-> b', "'x':*", 'fat & (rat | cat)']) },
  ...['point', 'line', 'lseg', 'box', 'path', 'polygon', 'circle'].map((g): TypeSpec => ({ id: g, sql: g, gen: (r) => lit(randomGeometry(r, g)) })),
  { id: 'oid', sql: 'oid', gen: (r) => lit(String(r.pick([0, 4294967295, r.int(0, 4294967295)]))), key: (n) => `'${n + 100000}'` },
  { id: 'pg_lsn', sql: 'pg_lsn', gen: (r) => lit(`${r.int(0, 0xffff).toString(16).toUpperCase()}/${r.int(0, 0x7fffffff).toString(16).toUpperCase()}`) },
  { id: 'int4range', sql: 'int4range', gen: fromList(['[1,10)', 'empty', '(,5]', '[3,)', '(,)', '[7,8]']) },
  { id: 'numrange', sql: 'numrange', gen: fromList(['[1.5,2.25]', 'empty', '(,0.001)', '[-1e10,1e10)']) },
  { id: 'tstzrange', sql: 'tstzrange', gen: fromList(['[2020-01-01 00:00+00,2021-01-01 00:00+05:30)', 'empty', '(,2020-01-01 00:00+14]', '[-infinity,infinity]']) },
  { id: 'daterange', sql: 'daterange', gen: fromList(['[2020-01-01,2020-02-01)', 'empty', '[2000-01-01,)', '(0044-03-15 BC,0044-03-16 BC]']) },
  { id: 'int4multirange', sql: 'int4multirange', minMajor: 14, gen: fromList(['{[1,3), [5,7)}', '{}', '{(,0], [10,)}']) },
  { id: 'datemultirange', sql: 'datemultirange', minMajor: 14, gen: fromList(['{[2020-01-01,2020-02-01), [2021-01-01,2021-01-02)}', '{}']) },
  { id: 'nummultirange', sql: 'nummultirange', minMajor: 14, gen: fromList(['{[1.5,2.5]}', '{}', '{(,1), (2,)}']) },
  // arrays
  { id: 'int4_arr', sql: 'integer[]', gen: (r, a) => lit(r.pick(['{1,NULL,3}', '{}', '{{1,2},{3,4}}', '{-2147483648}', ...(a('array-bounds') ? ['[0:2]={10,20,30}', '[-1:0][2:3]={{1,2},{3,4}}'] : [])])) },
  { id: 'text_arr', sql: 'text[]', gen: (r, a) => lit(r.pick(['{"a b","c,d","e\\"f",NULL,"NULL"}', '{}', '{{a,b},{c,NULL}}', '{""}', ...(a('array-bounds') ? ['[5:6]={x,y}'] : [])])) },
  { id: 'float8_arr', sql: 'double precision[]', gen: fromList(['{NaN,-0,Infinity,-Infinity,0.1,5e-324}', '{}', '{{1.5,NULL},{2,3}}']) },
  { id: 'numeric_arr', sql: 'numeric[]', gen: fromList(['{1.50,NaN,-0.000,NULL}', '{}']) },
  { id: 'tstz_arr', sql: 'timestamptz[]', gen: fromList(['{"2020-01-01 00:00:00+05:30","infinity",NULL}', '{}', '{"0044-03-15 12:00:00+00 BC"}']) },
  { id: 'date_arr', sql: 'date[]', gen: fromList(['{2020-01-01,infinity,NULL}', '{}']) },
  { id: 'uuid_arr', sql: 'uuid[]', gen: fromList(['{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}', '{}']) },
  { id: 'jsonb_arr', sql: 'jsonb[]', gen: (r, a) => lit(r.pick(['{"{\\"a\\": 1}",NULL}', '{}', ...(a('json-null') ? ['{"{\\"a\\": 1}","null",NULL}'] : [])])) },
  { id: 'bool_arr', sql: 'boolean[]', gen: fromList(['{t,f,NULL}', '{}']) },
  { id: 'interval_arr', sql: 'interval[]', gen: fromList(['{"1 day","-00:00:01",NULL}', '{}']) },
  { id: 'bytea_arr', sql: 'bytea[]', gen: fromList(['{"\\\\x00ff",NULL,"\\\\x"}', '{}']) },
  // user-defined
  { id: 'enum', sql: 'public.x_mood', needs: ['mood'], gen: fromList(['sad', 'ok', 'happy', 'with space', 'ünï "q"']) },
  { id: 'enum_arr', sql: 'public.x_mood[]', needs: ['mood'], gen: fromList(['{sad,ok}', '{}', '{"with space",NULL}']) },
  { id: 'domain_int', sql: 'public.x_posint', needs: ['posint'], gen: (r) => String(r.int(1, 2147483647)), key: (n) => String(n + 1) },
  { id: 'domain_text', sql: 'public.x_shorttext', needs: ['shorttext'], gen: (r) => lit(randomText(r, 15)), key: textKey },
  { id: 'domain_arr', sql: 'public.x_intlist', needs: ['intlist'], gen: (r, a) => lit(r.pick(['{1,2,3}', '{}', '{NULL}', ...(a('array-bounds') ? ['[2:3]={7,8}'] : [])])) },
  {
    id: 'composite',
    sql: 'public.x_addr',
    needs: ['addr'],
    gen: (r) => r.pick(["'(,,,,)'", `ROW(${lit(randomText(r, 10))}, ${r.int(-99999, 99999)}, ${lit('{a,"b c"}')}, ${lit(randomTimestamp(r, true))}, ${lit(randomFloat8(r))})::public.x_addr`]),
  },
  { id: 'composite_arr', sql: 'public.x_addr[]', needs: ['addr'], gen: fromList(['{"(a,1,{x},\\"2020-01-01 00:00:00+02\\",0.1)",NULL}', '{}']) },
  { id: 'nested', sql: 'public.x_nested', needs: ['nested'], gen: fromList(['("(st,1,{a},\\"2020-01-01 00:00:00+02\\",-0)",happy,1.50)', '(,,)', '("(,,,,)",sad,NaN)']) },
  // extension types
  { id: 'citext', sql: 'public.citext', needs: ['citext'], gen: (r) => lit(randomText(r, 10)), key: textKey },
  { id: 'hstore', sql: 'public.hstore', needs: ['hstore'], features: ['hstore'], gen: fromList(['a=>1, "b c"=>NULL', '', '"d"=>"\\"q\\""', 'k=>v']) },
  { id: 'ltree', sql: 'public.ltree', needs: ['ltree'], gen: fromList(['Top.Science.Astronomy', '', 'a', 'a.b_c.d1']), key: (n) => `'k.n${n}'` },
];

export function typeById(id: string): TypeSpec {
  const t = TYPES.find((x) => x.id === id);
  if (!t) throw new Error(`unknown type ${id}`);
  return t;
}

/** Types both servers support (major, extensions) and that no excluded feature rules out. */
export function availableTypes(env: Environment, allowed: (feature: string) => boolean): TypeSpec[] {
  const min = Math.min(env.sourceMajor, env.targetMajor);
  return TYPES.filter((t) => {
    if ((t.minMajor ?? 0) > min) return false;
    if ((t.features ?? []).some((f) => !allowed(f))) return false;
    for (const n of t.needs ?? []) {
      const p = PRELUDE[n]!;
      if (p.extension && !env.extensions.includes(p.extension)) return false;
      if ((p.minMajor ?? 0) > min) return false;
    }
    // Floats inside arrays and composites print with 17 digits before PG 12, shortest after: compare only where both agree.
    return true;
  });
}
