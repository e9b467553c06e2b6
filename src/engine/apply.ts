/**
 * Set-based apply of events on a subscriber. Events are taken in order; for
 * each table, the net effect per key is kept (the last row image, or deleted)
 * and flushed with two statements per table: one DELETE of every key that
 * existed before, one INSERT of every final row — rows travel as one JSON
 * array parameter, read back into the subscriber's column types by
 * json_to_recordset (the inverse of the provider's to_json). A TRUNCATE flushes
 * what came before it and runs in its place, so its order relative to row
 * changes is kept. The caller owns the transaction.
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
  rowsInserted: number;
  truncates: number;
}

export function emptyStats(): ApplyStats {
  return { events: 0, rowsDeleted: 0, rowsInserted: 0, truncates: 0 };
}

export function addStats(a: ApplyStats, b: ApplyStats): ApplyStats {
  return {
    events: a.events + b.events,
    rowsDeleted: a.rowsDeleted + b.rowsDeleted,
    rowsInserted: a.rowsInserted + b.rowsInserted,
    truncates: a.truncates + b.truncates,
  };
}

/**
 * How one table is applied on the subscriber: its key DELETE, and an INSERT
 * per set of shipped columns (normally one; another after the provider's table
 * gained a column), each a named prepared statement.
 */
export class TableStatements {
  readonly qualified: string;
  readonly deleteSql: string;
  readonly deleteName: string;
  private inserts = new Map<string, { name: string; text: string }>();

  constructor(
    readonly table: CapturedTable,
    private readonly columns: ReadonlyMap<string, SubscriberColumn>,
  ) {
    this.qualified = format('%I.%I', table.schema, table.name);
    const keyTypes = table.keyColumns.map((k) => {
      const col = columns.get(k);
      if (!col) throw new SubscriberSchemaError(`table ${this.qualified} on the subscriber lacks the key column ${k}`, 'make the subscriber table match the provider');
      return format('%I %s', k, col.type);
    });
    const match = table.keyColumns.map((k) => format('t.%I = k.%I', k, k)).join(' AND ');
    this.deleteSql = `DELETE FROM ${this.qualified} t USING pg_catalog.json_to_recordset($1::pg_catalog.json) AS k(${keyTypes.join(', ')}) WHERE ${match}`;
    this.deleteName = statementName('d', this.deleteSql);
  }

  /** The INSERT for rows carrying exactly `shipped` columns (from the row JSON). */
  insertFor(shipped: readonly string[]): { name: string; text: string } {
    const cacheKey = shipped.join('\u0000');
    let st = this.inserts.get(cacheKey);
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
      const text =
        `INSERT INTO ${this.qualified} (${list}) SELECT ${list} ` +
        `FROM pg_catalog.json_to_recordset($1::pg_catalog.json) AS r(${cols.map((c) => format('%I %s', c, this.columns.get(c)!.type)).join(', ')})`;
      st = { name: statementName('i', text), text };
      this.inserts.set(cacheKey, st);
    }
    return st;
  }
}

function statementName(kind: string, text: string): string {
  return `pgc_${kind}_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`;
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

/** Reads the subscriber's columns of a table and makes its statements. */
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
  return new TableStatements(table, new Map(rows.map((c) => [c.name, c])));
}

interface KeyState {
  /** Final row image (JSON text), or null when the row ends deleted. */
  row: string | null;
  /** False when the first event seen for the key was an INSERT: no row to delete first. */
  existed: boolean;
}

/**
 * Applies events to the subscriber, set-based. Keeps pending net effects
 * between calls only until `flush()`; call `flush()` at the end of each chunk.
 */
export class EventApplier {
  private pending = new Map<number, Map<string, KeyState>>();
  private stats = emptyStats();

  constructor(
    private readonly subscriber: pg.Client,
    private readonly statements: (tableId: number) => TableStatements | undefined,
  ) {}

  /** Adds a chunk of events (in event order) and applies them. */
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

  /** Applies the pending net effect: per table one DELETE and one INSERT. */
  async flush(): Promise<void> {
    for (const [tableId, perTable] of this.pending) {
      const st = this.statements(tableId)!;
      const keys: string[] = [];
      const rows: string[] = [];
      for (const [key, state] of perTable) {
        if (state.existed) keys.push(key);
        if (state.row !== null) rows.push(state.row);
      }
      if (keys.length) {
        const r = await this.subscriber.query({ name: st.deleteName, text: st.deleteSql, values: [`[${keys.join(',')}]`] });
        this.stats.rowsDeleted += r.rowCount ?? 0;
      }
      if (rows.length) {
        // Rows of one flush share their columns; read them off the first row.
        const insert = st.insertFor(Object.keys(JSON.parse(rows[0]!) as object));
        const r = await this.subscriber.query({ name: insert.name, text: insert.text, values: [`[${rows.join(',')}]`] });
        this.stats.rowsInserted += r.rowCount ?? 0;
      }
    }
    this.pending.clear();
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
