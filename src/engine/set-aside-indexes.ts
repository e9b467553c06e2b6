/**
 * Indexes a copy sets aside (drops before the load, builds again after it,
 * as pg_dump's post-data does): which ones may go, their definitions, and
 * the statements that build them again idempotently. A load into a bare heap
 * and one index build per index at the end is much cheaper than maintaining
 * every btree row by row. A split copy keeps them on record in
 * `subscriber_table.copy_indexes` until it has rebuilt them; a table removed
 * from its subscription with indexes still on record gets them back
 * (api.ts removeSubscriberTable), so no path loses an index.
 *
 * Primary keys, unique constraints and unique indexes go too when `keys` is
 * asked for (large tables copied alone). No index goes whose drop would lose
 * something the rebuild does not give back: a foreign key pointing at it, a
 * replica identity or CLUSTER mark, a comment, a tablespace of its own, an
 * exclusion constraint, a partition's attached index, an invalid index.
 */
import type pg from 'pg';
import { quoteIdent, quoteQualified } from '../kernel/index.js';

export interface SetAsideIndex {
  schema: string;
  name: string;
  /** pg_get_indexdef(): `CREATE [UNIQUE] INDEX name ON schema.table USING …`. */
  def: string;
  /** The primary key or unique constraint the index backed (same name), attached again after the build. */
  constraint?: { kind: 'p' | 'u'; table: string; deferrable: boolean; deferred: boolean };
}

/** The indexes of a table (a plain one: none of a partitioned table, whose pg_get_indexdef says ON ONLY) that may be set aside. */
export async function indexesToSetAside(c: pg.Client, qualified: string, options: { keys: boolean }): Promise<SetAsideIndex[]> {
  type Row = { schema: string; name: string; def: string; kind: 'p' | 'u' | null; deferrable: boolean; deferred: boolean };
  // Asked first, not tried: the query runs inside the load's transaction, which a failed statement would abort.
  const version = Number((await c.query<{ v: string }>("SELECT pg_catalog.current_setting('server_version_num') AS v")).rows[0]!.v);
  // PostgreSQL 10 has no pg_constraint.conparentid (nor partitioned indexes): the same without it.
  const { rows } = await c.query<Row>(setAsideSql(version >= 110000), [qualified, options.keys]);
  return rows.map((r) => ({
    schema: r.schema,
    name: r.name,
    def: r.def,
    ...(r.kind ? { constraint: { kind: r.kind, table: qualified, deferrable: r.deferrable, deferred: r.deferred } } : {}),
  }));
}

/** The indexes of table $1 that may be set aside ($2: keys too); `partitions`: the server knows partitioned indexes (11+). */
function setAsideSql(partitions: boolean): string {
  return `SELECT n.nspname AS schema, ic.relname AS name, pg_catalog.pg_get_indexdef(i.indexrelid) AS def,
            k.contype::text AS kind, coalesce(k.condeferrable, false) AS deferrable, coalesce(k.condeferred, false) AS deferred
       FROM pg_catalog.pg_index i
       JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
       JOIN pg_catalog.pg_class t ON t.oid = i.indrelid
       JOIN pg_catalog.pg_namespace n ON n.oid = ic.relnamespace
       LEFT JOIN pg_catalog.pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u')
      WHERE i.indrelid = pg_catalog.to_regclass($1) AND t.relkind = 'r'
        -- Not a partition's index attached to its parent's: PostgreSQL refuses to drop it alone (a rebuilt one would be detached).
        ${partitions ? 'AND NOT ic.relispartition' : ''}
        AND i.indisvalid AND NOT i.indisreplident AND NOT i.indisclustered AND ic.reltablespace = 0
        AND pg_catalog.obj_description(i.indexrelid, 'pg_class') IS NULL
        -- Behind no constraint other than a primary key or unique one (exclusion constraints stay).
        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint x WHERE x.conindid = i.indexrelid AND x.contype NOT IN ('p', 'u', 'f'))
        -- A unique index only with the keys, and none a foreign key points at; a constraint's only with no comment of its own.
        AND (NOT i.indisunique OR ($2
             AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint f WHERE f.contype = 'f' AND f.conindid = i.indexrelid)
             AND (k.oid IS NULL OR (${partitions ? 'k.conparentid = 0 AND ' : ''}pg_catalog.obj_description(k.oid, 'pg_constraint') IS NULL))))
      ORDER BY ic.relname`;
}

/** Drops the indexes (a key by its constraint, which drops its index). */
export async function dropSetAside(c: pg.Client, indexes: readonly SetAsideIndex[]): Promise<void> {
  for (const ix of indexes) {
    if (ix.constraint) await c.query(`ALTER TABLE ${ix.constraint.table} DROP CONSTRAINT ${quoteIdent(ix.name)}`);
    else await c.query(`DROP INDEX ${quoteQualified(ix.schema, ix.name)}`);
  }
}

/** `CREATE [UNIQUE] INDEX … IF NOT EXISTS`: a rebuild repeated after a kill, or of an index a newer copy made, is a no-op. */
export function rebuildSql(ix: SetAsideIndex): string {
  return ix.def.replace(/^CREATE (UNIQUE )?INDEX /, (_m, unique: string | undefined) => `CREATE ${unique ?? ''}INDEX IF NOT EXISTS `);
}

/**
 * Builds the indexes again, in parallel over the given sessions, then attaches
 * the keys to their indexes (`ADD CONSTRAINT … USING INDEX`, in the first
 * session, skipped where the constraint exists already).
 */
export async function rebuildSetAside(sessions: readonly pg.Client[], indexes: readonly SetAsideIndex[]): Promise<void> {
  const todo = [...indexes];
  await Promise.all(
    sessions.map(async (c) => {
      for (let ix = todo.shift(); ix; ix = todo.shift()) await c.query(rebuildSql(ix));
    }),
  );
  for (const ix of indexes) if (ix.constraint) await attachConstraint(sessions[0]!, ix);
}

async function attachConstraint(c: pg.Client, ix: SetAsideIndex): Promise<void> {
  const k = ix.constraint!;
  const exists = await c.query('SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = pg_catalog.to_regclass($1) AND conname = $2', [k.table, ix.name]);
  if (exists.rowCount) return;
  const timing = k.deferrable ? ` DEFERRABLE INITIALLY ${k.deferred ? 'DEFERRED' : 'IMMEDIATE'}` : '';
  await c.query(`ALTER TABLE ${k.table} ADD CONSTRAINT ${quoteIdent(ix.name)} ${k.kind === 'p' ? 'PRIMARY KEY' : 'UNIQUE'} USING INDEX ${quoteIdent(ix.name)}${timing}`);
}
