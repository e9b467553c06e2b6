/**
 * One table's columns as a comparison of values needs them, read live on one
 * side (compare reads them inside its snapshot's session): name, type without
 * modifier as `format_type(atttypid, NULL)` prints it (what a key value
 * parameter is cast to), and whether it has a collation. Nothing is written.
 */
import type pg from 'pg';
import { quoteQualified, type QualifiedName } from '../kernel/index.js';

export interface ColumnType {
  /** Already quoted and schema-qualified by the server where needed. */
  type: string;
  collatable: boolean;
}

/** The table's columns in column order (empty when the table does not exist). */
export async function readColumnTypes(client: pg.Client, table: QualifiedName): Promise<Map<string, ColumnType>> {
  const { rows } = await client.query<{ name: string; type: string; collatable: boolean }>(
    `SELECT a.attname AS name, pg_catalog.format_type(a.atttypid, NULL) AS type, a.attcollation <> 0 AS collatable
       FROM pg_catalog.pg_attribute a
      WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [quoteQualified(table.schema, table.name)],
  );
  return new Map(rows.map((r) => [r.name, { type: r.type, collatable: r.collatable }]));
}
