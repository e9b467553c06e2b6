/**
 * Secondary indexes a copy sets aside (drops before the load, builds again
 * after it): their definitions, and the statement that builds one again
 * idempotently. A split copy keeps them on record in
 * `subscriber_table.copy_indexes` until it has rebuilt them; a table removed
 * from its subscription with indexes still on record gets them back
 * (api.ts removeSubscriberTable), so no path loses an index.
 */

export interface SetAsideIndex {
  schema: string;
  name: string;
  /** pg_get_indexdef(): `CREATE INDEX name ON schema.table USING …` (only non-unique indexes are set aside). */
  def: string;
}

/** `CREATE INDEX … IF NOT EXISTS`: a rebuild repeated after a kill, or of an index a newer copy made, is a no-op. */
export function rebuildSql(ix: SetAsideIndex): string {
  return ix.def.replace(/^CREATE INDEX /, 'CREATE INDEX IF NOT EXISTS ');
}
