/**
 * Hashing, compare's SQL for one table on one side: key ranges as row
 * comparisons with the key values as parameters (text, cast to this side's
 * key types), collatable key columns ordered and compared with COLLATE "C"
 * (two servers may order text differently), and an order-independent
 * checksum of a range — the sum of the first 64 bits of each row's md5 —
 * over the compared columns in one fixed order. Every identifier is quoted
 * (a column may be called `window` or `current_role`), and every statement
 * reads the table itself only (`FROM ONLY`: an inheritance child's rows are
 * not the parent's), except a partitioned table, which is read whole (every
 * partition's rows are its rows). The sessions run under EXACT_SESSION_SQL
 * (src/engine/session.ts), so a value's text does not depend on the
 * server's or the role's settings.
 */
import type pg from 'pg';
import { quoteIdent, quoteQualified, sqlFormat } from '../../kernel/index.js';

export interface KeyColumn {
  name: string;
  /**
   * This side's type without modifier, as `format_type(atttypid, NULL)` prints it — already quoted and
   * schema-qualified by the server where needed — which is what a key value parameter is cast to.
   */
  type: string;
  /** Has a collation: ordered and compared with COLLATE "C". */
  collatable: boolean;
}

/** One table on one side. */
export interface TableShape {
  schema: string;
  name: string;
  keys: KeyColumn[];
  /** Compared columns, in the same order on both sides. */
  columns: string[];
  /**
   * Columns of type real or double precision on this side, hashed by their IEEE bits
   * (float4send/float8send): their text differs between servers before and after PostgreSQL 12.
   */
  floats?: ReadonlyMap<string, 'real' | 'double precision'>;
  /** A partitioned table on this side: read with its partitions (no ONLY). */
  partitioned?: boolean;
}

/** Key values as text, one per key column, in key order. */
export type KeyTuple = string[];

/** Rows with key > `after` (exclusive) and key <= `through` (inclusive); null: unbounded. */
export interface KeyRange {
  after: KeyTuple | null;
  through: KeyTuple | null;
}

export interface RangeSummary {
  rows: number;
  /** The checksum as a decimal string (a numeric sum). */
  checksum: string;
}

export interface RowDigest {
  key: KeyTuple;
  /** md5 of the row's text. */
  digest: string;
}

/** `ONLY schema.table`: the table's own rows, without those of inheritance children; a partitioned table's are its partitions'. */
function only(t: TableShape): string {
  return `${t.partitioned ? '' : 'ONLY '}${quoteQualified(t.schema, t.name)}`;
}

function keyExpressions(t: TableShape): string[] {
  return t.keys.map((k) => (k.collatable ? `${quoteIdent(k.name)} COLLATE "C"` : quoteIdent(k.name)));
}

function keyOrder(t: TableShape): string {
  return keyExpressions(t).join(', ');
}

function rowDigestExpression(t: TableShape): string {
  const column = (c: string) => {
    const float = t.floats?.get(c);
    return float ? sqlFormat(float === 'real' ? 'pg_catalog.float4send(%I)' : 'pg_catalog.float8send(%I)', c) : quoteIdent(c);
  };
  return `pg_catalog.md5(ROW(${t.columns.map(column).join(', ')})::text)`;
}

/** The WHERE clause of a range, its parameters appended to `params`. */
function rangePredicate(t: TableShape, range: KeyRange, params: unknown[]): string {
  const keys = `(${keyExpressions(t).join(', ')})`;
  const tuple = (values: KeyTuple) =>
    `(${values
      .map((v, i) => {
        params.push(v);
        return `$${params.length}::${t.keys[i]!.type}`;
      })
      .join(', ')})`;
  const parts: string[] = [];
  if (range.after) parts.push(`${keys} > ${tuple(range.after)}`);
  if (range.through) parts.push(`${keys} <= ${tuple(range.through)}`);
  return parts.length ? parts.join(' AND ') : 'true';
}

function keyTextColumns(t: TableShape): string {
  return t.keys.map((k, i) => sqlFormat('%I::text AS %I', k.name, `k${i}`)).join(', ');
}

function keyTupleOf(t: TableShape, row: Record<string, string>): KeyTuple {
  return t.keys.map((_, i) => row[`k${i}`]!);
}

/** Row count and checksum of a range. */
export async function summarizeRange(client: pg.Client, t: TableShape, range: KeyRange): Promise<RangeSummary> {
  const params: unknown[] = [];
  const where = rangePredicate(t, range, params);
  const { rows } = await client.query<{ n: string; checksum: string }>(
    `SELECT count(*)::text AS n, coalesce(sum(('x' || substr(${rowDigestExpression(t)}, 1, 16))::bit(64)::bigint), 0)::text AS checksum
       FROM ${only(t)} WHERE ${where}`,
    params,
  );
  return { rows: Number(rows[0]!.n), checksum: rows[0]!.checksum };
}

/** The key of the row `offset` rows into a range (in key order), or null when the range has no such row. */
export async function keyAtOffset(client: pg.Client, t: TableShape, range: KeyRange, offset: number): Promise<KeyTuple | null> {
  const params: unknown[] = [];
  const where = rangePredicate(t, range, params);
  params.push(offset);
  const { rows } = await client.query<Record<string, string>>(
    `SELECT ${keyTextColumns(t)} FROM ${only(t)} WHERE ${where} ORDER BY ${keyOrder(t)} LIMIT 1 OFFSET $${params.length}`,
    params,
  );
  return rows[0] ? keyTupleOf(t, rows[0]) : null;
}

/** Key and digest of the first `limit` rows of a range, in key order. */
export async function rowDigests(client: pg.Client, t: TableShape, range: KeyRange, limit: number): Promise<RowDigest[]> {
  const params: unknown[] = [];
  const where = rangePredicate(t, range, params);
  params.push(limit);
  const { rows } = await client.query<Record<string, string>>(
    `SELECT ${keyTextColumns(t)}, ${rowDigestExpression(t)} AS digest FROM ${only(t)} WHERE ${where} ORDER BY ${keyOrder(t)} LIMIT $${params.length}`,
    params,
  );
  return rows.map((r) => ({ key: keyTupleOf(t, r), digest: r.digest! }));
}

/** Sorts key tuples in the table's key order (COLLATE "C" for text), by asking the server. */
export async function sortKeys(client: pg.Client, t: TableShape, keys: KeyTuple[]): Promise<KeyTuple[]> {
  if (keys.length < 2) return keys;
  const params = t.keys.map((_, i) => keys.map((k) => k[i]!));
  const columns = t.keys.map((k, i) => `$${i + 1}::${k.type}[]`).join(', ');
  const names = t.keys.map((_, i) => quoteIdent(`k${i}`));
  const order = t.keys.map((k, i) => (k.collatable ? `${names[i]} COLLATE "C"` : names[i])).join(', ');
  const { rows } = await client.query<Record<string, string>>(
    `SELECT ${names.map((n) => `${n}::text AS ${n}`).join(', ')} FROM unnest(${columns}) AS u(${names.join(', ')}) ORDER BY ${order}`,
    params,
  );
  return rows.map((r) => keyTupleOf(t, r));
}

/**
 * Key tuples read on the other side, as this side prints the same typed
 * values: each value cast to this side's key type and back to text. Keys read
 * on both sides are matched in this one form (a float key prints 17 digits on
 * PostgreSQL 10/11 and the shortest exact form from 12).
 */
export async function canonicalKeys(client: pg.Client, t: TableShape, keys: KeyTuple[]): Promise<KeyTuple[]> {
  if (!keys.length) return keys;
  const params = t.keys.map((_, i) => keys.map((k) => k[i]!));
  const columns = t.keys.map((k, i) => `$${i + 1}::${k.type}[]`).join(', ');
  const names = t.keys.map((_, i) => quoteIdent(`k${i}`));
  const { rows } = await client.query<Record<string, string>>(
    `SELECT ${names.map((n) => `${n}::text AS ${n}`).join(', ')} FROM unnest(${columns}) WITH ORDINALITY AS u(${names.join(', ')}, ord) ORDER BY ord`,
    params,
  );
  return rows.map((r) => keyTupleOf(t, r));
}
