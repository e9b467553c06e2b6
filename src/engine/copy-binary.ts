/**
 * Whether a table's initial copy may stream in COPY's binary format instead
 * of text: binary skips both backends' text output and input (the larger
 * part of a COPY's CPU), but a value's binary form is only the same on two
 * servers for types whose send/receive functions are the same there. So the
 * answer is yes only when EVERY copied column, on both sides, is
 *
 *   - of the same type (format_type with its typmod, by name) on both sides, and
 *   - after unwinding domains, a built-in base type of BINARY_SAFE (or a
 *     built-in array of one: array_send names its element type's OID, which
 *     is fixed for built-ins), with the same send and receive functions on
 *     both sides; or an enum (enum_send sends the label, which the other
 *     side looks up in its own type).
 *
 * Anything else — composites and arrays of user types (their binary form
 * names OIDs, which differ between clusters), reg* types (OIDs, where text
 * has names), xml (encoding declarations), interval (PostgreSQL 17 gave
 * ±infinity the bit patterns of two extreme values that are finite before
 * it, which its receive function does not refuse), extension types, and every
 * type not listed — makes the whole table copy as text. A domain's checks run
 * in its receive function as in its input function. Text values go through
 * the same client-encoding conversion in both formats (textsend/textrecv).
 */
import type pg from 'pg';

/** Built-in base types (pg_catalog) whose binary form is the same on PostgreSQL 10 through 18. */
export const BINARY_SAFE: ReadonlySet<string> = new Set([
  'bool',
  'bytea',
  'char',
  'name',
  'int2',
  'int4',
  'int8',
  'oid',
  'text',
  'varchar',
  'bpchar',
  'float4',
  'float8',
  'numeric',
  'money',
  'date',
  'time',
  'timetz',
  'timestamp',
  'timestamptz',
  'uuid',
  'json',
  'jsonb',
  'inet',
  'cidr',
  'macaddr',
  'macaddr8',
  'bit',
  'varbit',
  'point',
  'lseg',
  'box',
  'path',
  'polygon',
  'line',
  'circle',
  'pg_lsn',
  'int4range',
  'int8range',
  'numrange',
  'daterange',
  'tsrange',
  'tstzrange',
]);

/** First OID of objects not built in (FirstNormalObjectId). */
const FIRST_USER_OID = 16384;

export interface ColumnType {
  name: string;
  /** format_type(atttypid, atttypmod). */
  type: string;
  /** The base type after domains: its OID, name, schema, kind, category, send and receive functions. */
  baseOid: number;
  baseName: string;
  baseSchema: string;
  baseKind: string;
  baseCategory: string;
  send: string;
  receive: string;
  sendOid: number;
  receiveOid: number;
  /** An array's element type (0 for none): its OID, name and kind. */
  elemOid: number;
  elemName: string | null;
  elemKind: string | null;
}

/** The copied columns' types on one side (table $1, columns $2). */
const COLUMN_TYPES_SQL = `
  WITH RECURSIVE col AS (
    SELECT a.attname::text AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type, a.atttypid AS base, 0 AS depth
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped AND a.attname::text = ANY ($2::text[])
    UNION ALL
    SELECT col.name, col.type, t.typbasetype, col.depth + 1
      FROM col JOIN pg_catalog.pg_type t ON t.oid = col.base
     WHERE t.typtype = 'd' AND col.depth < 100)
  SELECT col.name, col.type, b.oid::int8 AS "baseOid", b.typname::text AS "baseName", bn.nspname::text AS "baseSchema",
         b.typtype::text AS "baseKind", b.typcategory::text AS "baseCategory",
         b.typsend::oid::int8 AS send_oid, b.typsend::text AS send, b.typreceive::oid::int8 AS receive_oid, b.typreceive::text AS receive,
         b.typelem::int8 AS "elemOid", e.typname::text AS "elemName", e.typtype::text AS "elemKind"
    FROM col JOIN pg_catalog.pg_type b ON b.oid = col.base
    JOIN pg_catalog.pg_namespace bn ON bn.oid = b.typnamespace
    LEFT JOIN pg_catalog.pg_type e ON e.oid = b.typelem
   WHERE b.typtype <> 'd'`;

/** The copied columns' types on one side, by column name (read after the table is locked: a rewriting ALTER TABLE then waits). */
export type ColumnTypes = Map<string, ColumnType>;

export async function readColumnTypes(c: pg.Client, qualified: string, columns: readonly string[]): Promise<ColumnTypes> {
  const { rows } = await c.query<Record<string, string | number | null>>(COLUMN_TYPES_SQL, [qualified, columns]);
  return new Map(
    rows.map((r) => [
      String(r.name),
      {
        name: String(r.name),
        type: String(r.type),
        baseOid: Number(r.baseOid),
        baseName: String(r.baseName),
        baseSchema: String(r.baseSchema),
        baseKind: String(r.baseKind),
        baseCategory: String(r.baseCategory),
        send: String(r.send),
        receive: String(r.receive),
        sendOid: Number(r.send_oid),
        receiveOid: Number(r.receive_oid),
        elemOid: Number(r.elemOid),
        elemName: r.elemName === null ? null : String(r.elemName),
        elemKind: r.elemKind === null ? null : String(r.elemKind),
      },
    ]),
  );
}

/** The types as one string: a split copy's range checks the subscriber's are still those binary was chosen for. */
export function typesSignature(t: ColumnTypes): string {
  return JSON.stringify([...t.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)));
}

const builtin = (oid: number, schema: string) => oid > 0 && oid < FIRST_USER_OID && schema === 'pg_catalog';

/** Whether one side's column type has a binary form this module trusts (see the header). */
function safeOnOneSide(t: ColumnType): boolean {
  if (t.sendOid === 0 || t.receiveOid === 0) return false;
  if (t.baseKind === 'e') return t.send === 'enum_send' && t.receive === 'enum_recv';
  if (!builtin(t.baseOid, t.baseSchema) || (t.baseKind !== 'b' && t.baseKind !== 'r')) return false;
  if (t.baseCategory === 'A') return t.send === 'array_send' && t.receive === 'array_recv' && t.elemOid > 0 && t.elemOid < FIRST_USER_OID && t.elemName !== null && BINARY_SAFE.has(t.elemName);
  return BINARY_SAFE.has(t.baseName);
}

/**
 * Whether `columns` of the table (the same names on both sides) may be
 * copied in binary from a side of types `source` into one of types
 * `target`: every column safe on both sides and of the same type there (see
 * the header). False when any column is missing on either side (the text
 * copy then fails or succeeds as it always did). Both must be read with the
 * table locked against ALTER TABLE until the COPY is done.
 */
export function binaryCopySafe(source: ColumnTypes, target: ColumnTypes, columns: readonly string[]): boolean {
  if (!columns.length) return false;
  for (const name of columns) {
    const a = source.get(name);
    const b = target.get(name);
    if (!a || !b || !safeOnOneSide(a) || !safeOnOneSide(b)) return false;
    if (a.type !== b.type || a.baseKind !== b.baseKind || a.send !== b.send || a.receive !== b.receive) return false;
    // Built-ins: the very same type (OIDs of built-in types are fixed); enums: the same qualified name (format_type above).
    if (a.baseKind !== 'e' && (a.baseOid !== b.baseOid || a.elemOid !== b.elemOid)) return false;
  }
  return true;
}
