/**
 * A schema change made directly on the provider (bypassing `pgconvey
 * execute`), seen by the worker at the first event of the table's new row
 * shape: when the subscriber's table lacks a column the rows carry, the
 * batch is not applied and the error says exactly which table and columns,
 * since which tick, and the ALTER TABLE to run on the subscriber (the
 * provider's type, default and NOT NULL), so the operator mirrors it; the
 * worker retries the same batch (with backoff) and goes on once the columns
 * exist. Nothing is skipped. The worker holds that table alone when that is
 * exact (table-hold.ts) and the other tables go on; otherwise the whole queue
 * waits at that batch.
 */
import type pg from 'pg';
import { quoteIdent, quoteQualified } from '../kernel/index.js';
import { SubscriberSchemaError, type RowShape, type TableStatements } from './apply.js';
import type { QueueEvent } from './batch-reader.js';

/** The subscriber's table lacks columns the provider's rows carry: code `subscriber_schema_mismatch`, with what to run. */
export class SchemaMismatchError extends SubscriberSchemaError {
  constructor(
    readonly table: { schema: string; name: string },
    readonly columns: string[],
    /** The statements that mirror the provider's columns on the subscriber. */
    readonly alter: string[],
    readonly sinceTicks: { start: string; end: string },
    queue: string,
    renamed: string[],
  ) {
    const q = quoteQualified(table.schema, table.name);
    super(
      `table ${q} on the subscriber lacks the column(s) ${columns.join(', ')} that the provider's rows carry (a schema change made on the provider without pgconvey execute); ` +
        `replication of queue "${queue}" waits at the batch of ticks ${sinceTicks.start} to ${sinceTicks.end}, nothing is skipped; to go on, run on the subscriber: ${alter.join(' ')}`,
      `run on the subscriber: ${alter.join(' ')}${renamed.length ? ` (or, if the provider renamed ${renamed.join(', ')}, the same RENAME COLUMN)` : ''} The worker retries and goes on by itself; next time use pgconvey execute`,
    );
  }
}

/** Checks each row shape once, at its first event, against the subscriber's table. */
export class ShapeGuard {
  private readonly checked = new Set<number>();

  constructor(
    private readonly provider: pg.Client,
    private readonly subscriber: pg.Client,
    private readonly queue: string,
    private readonly ticks: { start: string; end: string },
  ) {}

  /** Forget the shapes checked (the subscriber's tables were read again). */
  reset(): void {
    this.checked.clear();
  }

  /** Throws SchemaMismatchError at the first event whose shape's columns the subscriber's table lacks. */
  async check(events: readonly QueueEvent[], statements: (tableId: number) => TableStatements | undefined, shapes: (shapeId: number) => RowShape | undefined): Promise<void> {
    for (const e of events) {
      if (e.shape === null || e.shape === 0 || this.checked.has(e.shape)) continue;
      const st = statements(e.table);
      const shape = shapes(e.shape);
      if (!st || !shape || shape.tableId !== e.table) continue; // not applied here, or refused by the applier itself
      this.checked.add(e.shape);
      try {
        st.forShape(shape);
      } catch (err) {
        if (!(err instanceof SubscriberSchemaError)) throw err;
        throw await this.explain(st, shape, err);
      }
    }
  }

  private async explain(st: TableStatements, shape: RowShape, original: SubscriberSchemaError): Promise<Error> {
    const { schema, name } = st.table;
    const sub = await this.subscriber.query<{ name: string }>(
      'SELECT a.attname AS name FROM pg_catalog.pg_attribute a WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped',
      [quoteQualified(schema, name)],
    );
    if (!sub.rows.length) return original; // the table itself is missing: the applier's message says so
    const has = new Set(sub.rows.map((r) => r.name));
    const missing = shape.columns.filter((c) => !has.has(c) && !shape.generated.includes(c));
    if (!missing.length) return original;
    const prov = await this.provider.query<{ name: string; type: string; notnull: boolean; def: string | null }>(
      `SELECT a.attname AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS notnull,
              pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS def
         FROM pg_catalog.pg_attribute a LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped AND a.attname = ANY ($2::text[])`,
      [quoteQualified(schema, name), missing],
    );
    const byName = new Map(prov.rows.map((r) => [r.name, r]));
    const q = quoteQualified(schema, name);
    const alter = missing.map((c) => {
      const p = byName.get(c);
      // A column gone again on the provider since: its type is not known any more.
      if (!p) return `ALTER TABLE ${q} ADD COLUMN ${quoteIdent(c)} <type>;`;
      return `ALTER TABLE ${q} ADD COLUMN ${quoteIdent(c)} ${p.type}${p.def !== null ? ` DEFAULT ${p.def}` : ''}${p.notnull ? ' NOT NULL' : ''};`;
    });
    const renamed = [...has].filter((c) => !shape.columns.includes(c));
    return new SchemaMismatchError({ schema, name }, missing, alter, this.ticks, this.queue, renamed);
  }
}
