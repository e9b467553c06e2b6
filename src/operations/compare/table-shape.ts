/**
 * A table as compare reads it on each side: this side's key column types
 * (read live through the catalog's readColumnTypes), the shipped columns
 * both sides have in the provider's order, float columns (hashed by their
 * bits), and whether the side partitions it (from the catalog).
 */
import { readColumnTypes, type ColumnType } from '../../catalog/index.js';
import { displayQualified } from '../../config/index.js';
import { CompareError } from './error.js';
import type { TableShape } from './hashing.js';
import type { PairPlan, PlannedTable } from './resolve.js';
import type { Connections } from './sessions.js';

/** The table on each side: this side's key types, and the shipped columns both sides have, in the provider's order. */
export async function tableShapes(plan: PairPlan, table: PlannedTable, conns: Connections): Promise<{ provider: TableShape; subscriber: TableShape }> {
  const { captured } = table;
  const [pCols, sCols] = await Promise.all([readColumnTypes(conns.provider, captured), readColumnTypes(conns.subscriber, captured)]);
  const label = displayQualified(captured.schema, captured.name);
  const missingKeys = captured.keyColumns.filter((k) => !pCols.has(k) || !sCols.has(k));
  if (missingKeys.length) {
    throw new CompareError(
      'key_columns_missing',
      `key column(s) ${missingKeys.join(', ')} of ${label} are missing on ${sCols.size ? `node "${plan.subscriberNode}" or node "${plan.providerNode}"` : `node "${plan.subscriberNode}" (the table is gone)`}`,
      'make the table match on both sides (pgconvey plan shows the differences)',
    );
  }
  const columns = captured.columns.filter((c) => pCols.has(c) && sCols.has(c));
  const shape = (cols: Map<string, ColumnType>, partitioned: boolean): TableShape => ({
    partitioned,
    schema: captured.schema,
    name: captured.name,
    keys: captured.keyColumns.map((k) => ({ name: k, ...cols.get(k)! })),
    columns,
    floats: new Map(columns.flatMap((c) => (cols.get(c)!.type === 'real' || cols.get(c)!.type === 'double precision' ? [[c, cols.get(c)!.type as 'real' | 'double precision']] : []))),
  });
  return { provider: shape(pCols, table.partitioned.provider), subscriber: shape(sCols, table.partitioned.subscriber) };
}
