/**
 * Set-based apply of events on a subscriber. Events are taken in order; for
 * each table, the net effect per key is kept (the last row image, or deleted)
 * and flushed with a few statements per table — rows travel as one JSON array
 * parameter, read back into the subscriber's column types by
 * json_to_recordset (the inverse of the provider's to_json):
 *
 * - when the subscriber has a unique index on exactly the key columns: one
 *   DELETE of the keys that end deleted, one UPDATE of the rows that existed
 *   before (and an INSERT of any it did not find), and one INSERT of the rows
 *   first inserted in this chunk;
 * - otherwise, or when that trips over another unique index (two rows
 *   swapping a unique value within one flush): one DELETE of every key that
 *   existed before, then one plain INSERT of every final row. The end state of
 *   a flush is a state the provider had, so this never violates a constraint.
 *
 * A TRUNCATE flushes what came before it and runs in its place, so its order
 * relative to row changes is kept. The caller owns the transaction.
 */
import { createHash } from 'node:crypto';
import format from 'pg-format';
import type pg from 'pg';
import type { QueueEvent } from './batch-reader.js';

/** A captured table as registered on the provider. */
export interface CapturedTable {
  tableId: number;
  schema: string;
  name: string;
  keyColumns: string[];
  columns: string[];
}

export interface ApplyStats {
  events: number;
  rowsDeleted: number;
  rowsWritten: number;
  truncates: number;
}

export function emptyStats(): ApplyStats {
  return { events: 0, rowsDeleted: 0, rowsWritten: 0, truncates: 0 };
}

export class SubscriberSchemaError extends Error {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
    this.name = 'SubscriberSchemaError';
  }
}

interface SubscriberColumn {
  name: string;
  /** The column's type with its modifier, as SQL (e.g. `character varying(20)`). */
  type: string;
  generated: boolean;
}

interface Statement {
  name: string;
  text: string;
}

/** The statements for one set of shipped columns. */
interface Shape {
  /** Plain INSERT of rows. */
  insert: Statement;
  /** With a unique key: UPDATE of rows by key (absent when every column is a key column). */
  update?: Statement;
  /** With a unique key: INSERT of the rows whose key is not there (after an UPDATE missed some). */
  insertMissing?: Statement;
}

function statement(kind: string, text: string): Statement {
  return { name: `pgc_${kind}_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`, text };
}

/**
 * How one table is applied on the subscriber: its key DELETE, and per set of
 * shipped columns (normally one; another after the provider's table gained a
 * column) an INSERT and, with a unique key, an UPDATE by key — all named
 * prepared statements.
 */
export class TableStatements {
  readonly qualified: string;
  readonly deleteKeys: Statement;
  private byShape = new Map<string, Shape>();

  constructor(
    readonly table: CapturedTable,
    private readonly columns: ReadonlyMap<string, SubscriberColumn>,
    /** A unique index on exactly the key columns exists: a key matches at most one row. */
    readonly keyIsUnique: boolean,
    /** Unique indexes other than that one exist: an UPDATE may still conflict. */
    readonly otherUniqueIndexes: boolean,
  ) {
    this.qualified = format('%I.%I', table.schema, table.name);
    const keyTypes = table.keyColumns.map((k) => {
      const col = columns.get(k);
      if (!col) throw new SubscriberSchemaError(`table ${this.qualified} on the subscriber lacks the key column ${k}`, 'make the subscriber table match the provider');
      return format('%I %s', k, col.type);
    });
    const match = table.keyColumns.map((k) => format('t.%I = k.%I', k, k)).join(' AND ');
    this.deleteKeys = statement('d', `DELETE FROM ${this.qualified} t USING pg_catalog.json_to_recordset($1::pg_catalog.json) AS k(${keyTypes.join(', ')}) WHERE ${match}`);
  }

  /** The statements for rows carrying exactly `shipped` columns (read off the row JSON). */
  forShape(shipped: readonly string[]): Shape {
    const cacheKey = shipped.join('\u0000');
    let st = this.byShape.get(cacheKey);
    if (!st) {
      const missing = shipped.filter((c) => !this.columns.has(c));
      if (missing.length) {
        throw new SubscriberSchemaError(
          `table ${this.qualified} on the subscriber lacks the column(s) ${missing.join(', ')} that the provider ships`,
          'add the missing columns on the subscriber (ALTER TABLE … ADD COLUMN); the worker retries',
        );
      }
      const cols = shipped.filter((c) => !this.columns.get(c)!.generated);
      const list = cols.map((c) => format('%I', c)).join(', ');
      const insert = `INSERT INTO ${this.qualified} (${list}) SELECT ${list} FROM pg_catalog.json_to_recordset($1::pg_catalog.json) AS r(${cols
        .map((c) => format('%I %s', c, this.columns.get(c)!.type))
        .join(', ')})`;
      const source = `pg_catalog.json_to_recordset($1::pg_catalog.json) AS r(${cols.map((c) => format('%I %s', c, this.columns.get(c)!.type)).join(', ')})`;
      const match = (alias: string) => this.table.keyColumns.map((k) => format('%s.%I = r.%I', alias, k, k)).join(' AND ');
      const nonKey = cols.filter((c) => !this.table.keyColumns.includes(c));
      st = {
        insert: statement('i', insert),
        ...(this.keyIsUnique
          ? {
              update: nonKey.length
                ? statement('u', `UPDATE ${this.qualified} t SET ${nonKey.map((c) => format('%I = r.%I', c, c)).join(', ')} FROM ${source} WHERE ${match('t')}`)
                : undefined,
              insertMissing: statement('m', `INSERT INTO ${this.qualified} (${list}) SELECT ${list} FROM ${source} WHERE NOT EXISTS (SELECT FROM ${this.qualified} x WHERE ${match('x')})`),
            }
          : {}),
      };
      this.byShape.set(cacheKey, st);
    }
    return st;
  }
}

/** Reads the subscriber's columns and unique indexes of a table and makes its statements. */
export async function prepareTable(subscriber: pg.Client, table: CapturedTable): Promise<TableStatements> {
  const qualified = format('%I.%I', table.schema, table.name);
  const generatedExpr = (await subscriber.query<{ n: number }>("SELECT current_setting('server_version_num')::int AS n")).rows[0]!.n >= 120000 ? "a.attgenerated <> ''" : 'false';
  const { rows } = await subscriber.query<SubscriberColumn>(
    `SELECT a.attname AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type, ${generatedExpr} AS generated
       FROM pg_catalog.pg_attribute a
      WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [qualified],
  );
  if (rows.length === 0) {
    throw new SubscriberSchemaError(`table ${qualified} does not exist on the subscriber`, 'create it (or let `prepare.schema: copy` create it) before applying');
  }
  // Unique indexes that make a key match at most one row: immediate, not partial, plain columns.
  const unique = await subscriber.query<{ columns: string[] }>(
    `SELECT array(SELECT a.attname::text FROM pg_catalog.pg_attribute a
                   WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) ORDER BY a.attname) AS columns
       FROM pg_catalog.pg_index i
      WHERE i.indrelid = pg_catalog.to_regclass($1) AND i.indisunique AND i.indimmediate
        AND i.indpred IS NULL AND i.indexprs IS NULL`,
    [qualified],
  );
  const keySet = [...table.keyColumns].sort().join('\u0000');
  const keyIsUnique = unique.rows.some((u) => u.columns.join('\u0000') === keySet);
  const otherUnique = unique.rows.some((u) => u.columns.join('\u0000') !== keySet);
  return new TableStatements(table, new Map(rows.map((c) => [c.name, c])), keyIsUnique, otherUnique);
}

interface ShapeGroup {
  /** The row's columns, in the provider's order at capture time. */
  columns: string[];
  fresh: string[];
  updated: string[];
}

/** Groups final row images by the columns they carry (one group, unless the provider's table changed meanwhile). */
function byShape(fresh: readonly string[], updated: readonly string[]): ShapeGroup[] {
  const groups = new Map<string, ShapeGroup>();
  const add = (row: string, into: 'fresh' | 'updated') => {
    const columns = Object.keys(JSON.parse(row) as object);
    const id = columns.join('\u0000');
    let g = groups.get(id);
    if (!g) groups.set(id, (g = { columns, fresh: [], updated: [] }));
    g[into].push(row);
  };
  for (const row of fresh) add(row, 'fresh');
  for (const row of updated) add(row, 'updated');
  return [...groups.values()];
}

interface KeyState {
  /** Final row image (JSON text), or null when the row ends deleted. */
  row: string | null;
  /** False when the first event seen for the key was an INSERT: no row to delete first. */
  existed: boolean;
}

const UNIQUE_VIOLATION = '23505';

/**
 * Applies events to the subscriber, set-based. Pending net effects are kept
 * only within one `apply()` call (one chunk), so memory follows the chunk.
 */
export class EventApplier {
  private pending = new Map<number, Map<string, KeyState>>();
  private stats = emptyStats();

  constructor(
    private readonly subscriber: pg.Client,
    private readonly statements: (tableId: number) => TableStatements | undefined,
  ) {}

  /** Applies a chunk of events (in event order). */
  async apply(events: readonly QueueEvent[]): Promise<void> {
    let i = 0;
    while (i < events.length) {
      const e = events[i]!;
      if (e.op === 'T') {
        // Consecutive TRUNCATE events of one transaction come from one statement (e.g. tables tied by
        // foreign keys, or CASCADE): truncate them together.
        const group: QueueEvent[] = [];
        while (i < events.length && events[i]!.op === 'T' && events[i]!.txid === e.txid) group.push(events[i++]!);
        await this.flush();
        await this.truncate(group);
        continue;
      }
      i++;
      if (!this.statements(e.table)) continue;
      this.stats.events++;
      let perTable = this.pending.get(e.table);
      if (!perTable) this.pending.set(e.table, (perTable = new Map()));
      const row = e.op === 'D' ? null : e.data;
      const state = perTable.get(e.key!);
      if (state) state.row = row;
      else perTable.set(e.key!, { row, existed: e.op !== 'I' });
    }
    await this.flush();
  }

  private async flush(): Promise<void> {
    for (const [tableId, perTable] of this.pending) await this.flushTable(this.statements(tableId)!, perTable);
    this.pending.clear();
  }

  private async flushTable(st: TableStatements, perTable: Map<string, KeyState>): Promise<void> {
    const fresh: string[] = []; // final rows of keys first seen inserted: they cannot exist yet
    const updated: string[] = []; // final rows of keys that existed before
    const gone: string[] = []; // keys that existed and end deleted
    const existed: string[] = [];
    for (const [key, state] of perTable) {
      if (state.existed) existed.push(key);
      if (state.row === null) {
        if (state.existed) gone.push(key);
      } else {
        (state.existed ? updated : fresh).push(state.row);
      }
    }
    // Rows carry the columns the provider's table had when they were captured: around an ALTER TABLE,
    // one flush can hold rows of two shapes, each written with exactly its own columns.
    const shapes = byShape(fresh, updated).map((g) => ({ ...g, shape: st.forShape(g.columns) }));
    if (shapes.length && shapes.every((g) => g.shape.insertMissing)) {
      const savepoint = st.otherUniqueIndexes;
      const before = { ...this.stats };
      if (savepoint) await this.subscriber.query('SAVEPOINT pgconvey_flush');
      try {
        await this.run(st.deleteKeys, gone, 'rowsDeleted');
        for (const g of shapes) {
          const changed = g.shape.update ? await this.run(g.shape.update, g.updated, 'rowsWritten') : 0;
          // Rows that should have been there but were not (e.g. deleted on the subscriber by hand).
          if (changed < g.updated.length) await this.run(g.shape.insertMissing!, g.updated, 'rowsWritten');
          await this.run(g.shape.insert, g.fresh, 'rowsWritten');
        }
        if (savepoint) await this.subscriber.query('RELEASE SAVEPOINT pgconvey_flush');
        return;
      } catch (err) {
        if (!savepoint || (err as { code?: string }).code !== UNIQUE_VIOLATION) throw err;
        await this.subscriber.query('ROLLBACK TO SAVEPOINT pgconvey_flush');
        this.stats = before;
        // Two rows swapped a unique value: fall through to delete-then-insert.
      }
    }
    await this.run(st.deleteKeys, existed, 'rowsDeleted');
    for (const g of shapes) await this.run(g.shape.insert, [...g.updated, ...g.fresh], 'rowsWritten');
  }

  /** Runs a statement on a JSON array of items; returns the rows it touched. */
  private async run(st: Statement, items: string[], counter: 'rowsDeleted' | 'rowsWritten'): Promise<number> {
    if (!items.length) return 0;
    const r = await this.subscriber.query({ name: st.name, text: st.text, values: [`[${items.join(',')}]`] });
    this.stats[counter] += r.rowCount ?? 0;
    return r.rowCount ?? 0;
  }

  private async truncate(group: readonly QueueEvent[]): Promise<void> {
    const targets = [...new Set(group.map((e) => e.table))].map((id) => this.statements(id)).filter((s): s is TableStatements => !!s);
    if (!targets.length) return;
    await this.subscriber.query(`TRUNCATE ${targets.map((t) => t.qualified).join(', ')}`);
    this.stats.truncates += targets.length;
    this.stats.events += group.length;
  }

  takeStats(): ApplyStats {
    const s = this.stats;
    this.stats = emptyStats();
    return s;
  }
}
