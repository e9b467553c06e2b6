/**
 * Set-based apply of events on a subscriber. Rows arrive as the text of the
 * whole row (record_out on the provider, each field its type's own output
 * under pinned settings) with the shape they were written with; the
 * subscriber reads them back with record_in into a composite type of the
 * shape's columns in the subscriber's own column types (pgconvey.r_<hash>),
 * so every value goes through its type's input function — what COPY does —
 * and nothing depends on JSON or on either session's settings.
 *
 * Events are taken in order; per table, the net effect per key is kept (the
 * last row image, or deleted) and flushed with a few statements per table.
 * A key is identified by the text of its fields as the provider wrote them
 * (one stored value, one text); the subscriber matches keys with the
 * equality operator of each key type's default btree operator class, named
 * with its schema:
 *
 * - when the subscriber has a unique index on exactly the key columns: one
 *   DELETE of the keys that end deleted, one UPDATE of the rows that existed
 *   before (and an INSERT of any it did not find), and one INSERT of the rows
 *   first inserted in this chunk;
 * - otherwise, or when that trips over another unique index or an exclusion
 *   constraint (two rows swapping a unique value within one flush), or when
 *   an ALWAYS identity column outside the key cannot be updated: one DELETE
 *   of every key that existed before, then one INSERT of every final row.
 *
 * Tables with inheritance children are written with ONLY. A TRUNCATE waits
 * until the next event of its transaction or of a truncated table (or the
 * end of the batch): the TRUNCATE events of one statement (tables tied by
 * foreign keys) then run as one TRUNCATE even when other transactions'
 * events, or a chunk boundary, fall between them. The caller owns the
 * transaction and calls finish() after the last chunk.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { PgconveyError, quoteIdent, quoteQualified } from '../kernel/index.js';
import type { QueueEvent } from './batch-reader.js';
import { keyIdentity, parseRowText } from './row-text.js';
import { pipelineReady, runPipeline, type PipelinedStatement } from './pipeline.js';
import { NO_PHASES, type Phases } from './worker-profile.js';

/** A captured table as registered on the provider. */
export interface CapturedTable {
  tableId: number;
  schema: string;
  name: string;
  keyColumns: string[];
  columns: string[];
}

/** A row shape (pgconvey.table_shape): the columns an event's row carries, in order, and the key its DELETE holds. */
export interface RowShape {
  shapeId: number;
  tableId: number;
  columns: string[];
  keyColumns: string[];
  /** The columns generated on the provider (their values are the provider's; the subscriber computes its own). */
  generated: string[];
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

/** The subscriber's table cannot take the provider's rows (missing, or lacking key columns): code `subscriber_schema_mismatch`. */
export class SubscriberSchemaError extends PgconveyError {
  constructor(message: string, hint: string) {
    super('subscriber_schema_mismatch', message, hint);
  }
}

interface SubscriberColumn {
  name: string;
  /** The column's type with its modifier, as SQL (e.g. `character varying(20)`). */
  type: string;
  generated: boolean;
  /** 'a' GENERATED ALWAYS AS IDENTITY, 'd' BY DEFAULT, '' none. */
  identity: string;
}

interface Statement {
  name: string;
  text: string;
  /** The composite type its parameter is an array of. */
  type: string;
}

/** The statements for rows of one shape. */
interface ShapeStatements {
  /** Key field positions in the row text, in key order. */
  keyPositions: number[];
  /** The last of them (the row text is read up to it). */
  lastKeyPosition: number;
  /** Plain INSERT of rows. */
  insert: Statement;
  /** With a unique key: UPDATE of rows by key (absent when there is nothing to set). */
  update?: Statement;
  /** With a unique key: INSERT of the rows whose key is not there (after an UPDATE missed some). */
  insertMissing?: Statement;
}

/** What the subscriber's table needs for one key definition (a list of key columns). */
interface KeyStatements {
  deleteKeys: Statement;
  /** The composite type reading key texts (created on first use). */
  keyType: CompositeType;
}

interface CompositeType {
  name: string;
  /** `CREATE TYPE` text. */
  create: string;
}

function statement(kind: string, text: string, type: string): Statement {
  return { name: `pgc_${kind}_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`, text, type };
}

/** A composite type of the given columns in the pgconvey schema, named by its definition. */
function compositeType(prefix: string, columns: ReadonlyArray<readonly [string, string]>): CompositeType {
  const body = columns.map(([n, t]) => `${quoteIdent(n)} ${t}`).join(', ');
  const name = `${prefix}_${createHash('sha1').update(body).digest('hex').slice(0, 32)}`;
  return { name, create: `CREATE TYPE pgconvey.${quoteIdent(name)} AS (${body})` };
}

/** An array literal of row texts, for a `$1::pgconvey.r_…[]` parameter. */
function arrayLiteral(items: readonly string[]): string {
  let out = '{';
  for (let i = 0; i < items.length; i++) {
    if (i) out += ',';
    out += `"${items[i]!.replace(/[\\"]/g, '\\$&')}"`;
  }
  return `${out}}`;
}

const KEY_ORDER = process.env.PGCONVEY_APPLY_KEY_ORDER === '1';

/**
 * The rows of the `$1` array of `type` sorted by the key columns (their
 * types' default btree order): the table's key index and, for a table
 * written in key order, its heap pages are then visited in order rather than
 * at random — 10,000 random pgbench_accounts updates ran about twice as fast
 * in key order (pages already logged since the checkpoint; about 1.1× when
 * every page still needs its full-page image). Only the order of the
 * statement's work changes: a key matches the same rows in any order.
 */
function inKeyOrder(type: string, keyColumns: readonly string[]): string {
  // Off by default: the lag at 500 tps looked worse with it (bench:engine --phases lag, one 10 s round each:
  // p50 52 and 65 ms against 40 ms without, load 1–2); PGCONVEY_APPLY_KEY_ORDER=1 turns it on to measure.
  return KEY_ORDER ? `(SELECT * FROM pg_catalog.unnest($1::${type}[]) AS u ORDER BY ${keyColumns.map((k) => `u.${quoteIdent(k)}`).join(', ')})` : `pg_catalog.unnest($1::${type}[])`;
}

/** The text of a row of fields (the inverse of parseRowText), for a key composite. */
export function rowText(fields: ReadonlyArray<string | null>): string {
  return `(${fields.map((f) => (f === null ? '' : `"${f.replace(/["\\]/g, (c) => c + c)}"`)).join(',')})`;
}

/**
 * How one table is applied on the subscriber: per key definition a DELETE by
 * key, and per row shape an INSERT and, with a unique key, an UPDATE by key —
 * all named prepared statements over composite types of pgconvey's own.
 */
export class TableStatements {
  readonly qualified: string;
  /** `ONLY` for a plain table (its inheritance children are not its rows); nothing for a partitioned one. */
  readonly only: string;
  private byShape = new Map<number, ShapeStatements>();
  private byKey = new Map<string, KeyStatements>();
  /** Composite types this table's statements use, to create before first use. */
  readonly types = new Map<string, CompositeType>();

  constructor(
    readonly table: CapturedTable,
    private readonly columns: ReadonlyMap<string, SubscriberColumn>,
    relkind: string,
    /** A unique index on exactly the key columns exists: a key matches at most one row. */
    readonly keyIsUnique: boolean,
    /** Unique indexes other than that one, or exclusion constraints, exist: an UPDATE may still conflict. */
    readonly otherConstraints: boolean,
    /** Per key column, the equality operator as `OPERATOR(schema.=)`. */
    private readonly equality: ReadonlyMap<string, string>,
  ) {
    this.qualified = quoteQualified(table.schema, table.name);
    this.only = relkind === 'p' ? '' : 'ONLY ';
  }

  /** An ALWAYS identity column outside the key exists: rows cannot be updated in place. */
  get mustReinsert(): boolean {
    return [...this.columns.values()].some((c) => c.identity === 'a' && !this.table.keyColumns.includes(c.name));
  }

  private get overriding(): string {
    return [...this.columns.values()].some((c) => c.identity === 'a') ? ' OVERRIDING SYSTEM VALUE' : '';
  }

  private match(alias: string, other: string, keyColumns: readonly string[]): string {
    return keyColumns.map((k) => `${alias}.${quoteIdent(k)} ${this.operator(k)} ${other}.${quoteIdent(k)}`).join(' AND ');
  }

  private operator(column: string): string {
    const op = this.equality.get(column);
    if (!op) {
      throw new SubscriberSchemaError(
        `key column ${column} of ${this.qualified} on the subscriber has a type with no default btree equality`,
        'choose key columns whose type can be compared for equality (entries: key: in the desired state)',
      );
    }
    return op;
  }

  private column(name: string): SubscriberColumn | undefined {
    return this.columns.get(name);
  }

  /** The DELETE by key for a key definition. */
  forKey(keyColumns: readonly string[]): KeyStatements {
    const id = keyColumns.join('\u0000');
    let st = this.byKey.get(id);
    if (!st) {
      const missing = keyColumns.filter((k) => !this.columns.has(k));
      if (missing.length) {
        throw new SubscriberSchemaError(`table ${this.qualified} on the subscriber lacks the key column(s) ${missing.join(', ')}`, 'make the subscriber table match the provider');
      }
      const keyType = compositeType('k', keyColumns.map((k) => [k, this.column(k)!.type] as const));
      this.types.set(keyType.name, keyType);
      st = {
        keyType,
        deleteKeys: statement(
          'd',
          `DELETE FROM ${this.only}${this.qualified} t USING ${inKeyOrder(`pgconvey.${quoteIdent(keyType.name)}`, keyColumns)} AS k WHERE ${this.match('t', 'k', keyColumns)}`,
          keyType.name,
        ),
      };
      this.byKey.set(id, st);
    }
    return st;
  }

  /** The statements for rows of `shape`. */
  forShape(shape: RowShape): ShapeStatements {
    let st = this.byShape.get(shape.shapeId);
    if (!st) {
      // A generated column of the provider's that the subscriber lacks is read as text and left out.
      const absent = new Set(shape.columns.filter((c) => !this.columns.has(c) && shape.generated.includes(c)));
      const missing = shape.columns.filter((c) => !this.columns.has(c) && !absent.has(c));
      if (missing.length) {
        throw new SubscriberSchemaError(
          `table ${this.qualified} on the subscriber lacks the column(s) ${missing.join(', ')} that the provider ships`,
          'add the missing columns on the subscriber (ALTER TABLE … ADD COLUMN); the worker retries',
        );
      }
      const rowType = compositeType(
        'r',
        shape.columns.map((c) => [c, absent.has(c) ? 'pg_catalog.text' : this.column(c)!.type] as const),
      );
      this.types.set(rowType.name, rowType);
      const keyPositions = shape.keyColumns.map((k) => {
        const at = shape.columns.indexOf(k);
        if (at < 0) throw new SubscriberSchemaError(`the rows of ${this.qualified} do not carry the key column ${k}`, 'capture the table again (pgconvey plan/apply)');
        return at;
      });
      const cols = shape.columns.filter((c) => !absent.has(c) && !this.column(c)!.generated);
      const list = cols.map(quoteIdent).join(', ');
      const source = `${inKeyOrder(`pgconvey.${quoteIdent(rowType.name)}`, shape.keyColumns)} AS r`;
      const values = cols.map((c) => `r.${quoteIdent(c)}`).join(', ');
      const settable = cols.filter((c) => !shape.keyColumns.includes(c) && this.column(c)!.identity !== 'a');
      st = {
        keyPositions,
        lastKeyPosition: Math.max(...keyPositions),
        insert: statement('i', `INSERT INTO ${this.qualified} (${list})${this.overriding} SELECT ${values} FROM ${source}`, rowType.name),
        ...(this.keyIsUnique && !this.mustReinsert
          ? {
              update: settable.length
                ? statement(
                    'u',
                    `UPDATE ${this.only}${this.qualified} t SET ${settable.map((c) => `${quoteIdent(c)} = r.${quoteIdent(c)}`).join(', ')} FROM ${source} WHERE ${this.match('t', 'r', shape.keyColumns)}`,
                    rowType.name,
                  )
                : undefined,
              insertMissing: statement(
                'm',
                `INSERT INTO ${this.qualified} (${list})${this.overriding} SELECT ${values} FROM ${source} WHERE NOT EXISTS (SELECT FROM ${this.only}${this.qualified} x WHERE ${this.match('x', 'r', shape.keyColumns)})`,
                rowType.name,
              ),
            }
          : {}),
      };
      this.byShape.set(shape.shapeId, st);
    }
    return st;
  }
}

/** Reads the subscriber's columns, keys and constraints of a table and makes its statements. */
export async function prepareTable(subscriber: pg.Client, table: CapturedTable): Promise<TableStatements> {
  return (await prepareTables(subscriber, [table]))[0]!;
}

/**
 * prepareTable for many tables at once, in the same few catalog round trips
 * whatever their number (a worker's first batch over 2,000 tables); the
 * statements in the tables' order. A table missing on the subscriber throws
 * (the first one, in that order).
 */
export async function prepareTables(subscriber: pg.Client, tables: readonly CapturedTable[]): Promise<TableStatements[]> {
  if (!tables.length) return [];
  const names = tables.map((t) => quoteQualified(t.schema, t.name));
  const version = (await subscriber.query<{ n: number }>("SELECT pg_catalog.current_setting('server_version_num')::int AS n")).rows[0]!.n;
  const generatedExpr = version >= 120000 ? "a.attgenerated <> ''" : 'false';
  const rel = await subscriber.query<{ i: number; oid: number; relkind: string }>(
    'SELECT x.i::int AS i, c.oid, c.relkind FROM pg_catalog.unnest($1::text[]) WITH ORDINALITY AS x(name, i) JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(x.name)',
    [names],
  );
  const byIndex = new Map(rel.rows.map((r) => [r.i - 1, r]));
  tables.forEach((_, i) => {
    if (!byIndex.has(i)) throw new SubscriberSchemaError(`table ${names[i]} does not exist on the subscriber`, 'create it (or let `prepare.schema: copy` create it) before applying');
  });
  const oids = [...new Set(rel.rows.map((r) => r.oid))];
  // The catalog reads of every table in one round trip.
  const read = (await subscriber.query(
    `SELECT a.attrelid AS rel, a.attname AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type, ${generatedExpr} AS generated, a.attidentity::text AS identity
       FROM pg_catalog.pg_attribute a
      WHERE a.attrelid = ANY ('${pgOidArray(oids)}'::pg_catalog.oid[]) AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attrelid, a.attnum;
     SELECT i.indrelid AS rel, array(SELECT a.attname::text FROM pg_catalog.pg_attribute a
                   WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) ORDER BY a.attname) AS columns,
            i.indimmediate AND i.indpred IS NULL AND i.indexprs IS NULL AS plain
       FROM pg_catalog.pg_index i
      WHERE i.indrelid = ANY ('${pgOidArray(oids)}'::pg_catalog.oid[]) AND i.indisunique;
     SELECT conrelid AS rel, count(*)::int AS n FROM pg_catalog.pg_constraint WHERE conrelid = ANY ('${pgOidArray(oids)}'::pg_catalog.oid[]) AND contype = 'x' GROUP BY conrelid;
     ${equalityOperatorsSql(`'${pgOidArray(oids)}'::pg_catalog.oid[]`)}`,
  )) as unknown as pg.QueryResult[];
  const group = <T extends { rel: number }>(rows: T[]) => {
    const m = new Map<number, T[]>();
    for (const r of rows) {
      let list = m.get(r.rel);
      if (!list) m.set(r.rel, (list = []));
      list.push(r);
    }
    return m;
  };
  const columns = group(read[0]!.rows as Array<SubscriberColumn & { rel: number }>);
  const uniques = group(read[1]!.rows as Array<{ rel: number; columns: string[]; plain: boolean }>);
  const exclusions = new Map((read[2]!.rows as Array<{ rel: number; n: number }>).map((r) => [r.rel, r.n]));
  const equalities = group(read[3]!.rows as Array<{ rel: number; name: string; nsp: string; opr: string }>);
  return tables.map((table, i) => {
    const { oid, relkind } = byIndex.get(i)!;
    const unique = uniques.get(oid) ?? [];
    const keySet = [...table.keyColumns].sort().join('\u0000');
    const isKey = (u: { columns: string[]; plain: boolean }) => u.plain && u.columns.join('\u0000') === keySet;
    const keyIsUnique = unique.some(isKey);
    const otherConstraints = unique.some((u) => !isKey(u)) || (exclusions.get(oid) ?? 0) > 0;
    const equality = new Map((equalities.get(oid) ?? []).map((r) => [r.name, `OPERATOR(${quoteIdent(r.nsp)}.${r.opr})`]));
    const cols = (columns.get(oid) ?? []).map((c) => [c.name, { name: c.name, type: c.type, generated: c.generated, identity: c.identity }] as const);
    return new TableStatements(table, new Map(cols), relkind, keyIsUnique, otherConstraints, equality);
  });
}

/** An oid[] literal's text (oids are numbers: nothing to quote). */
function pgOidArray(oids: readonly number[]): string {
  return `{${oids.map((o) => String(Math.trunc(Number(o)))).join(',')}}`;
}

/**
 * Per column of the tables `relations` (an oid[] expression), the `=` of its
 * type's default btree operator class (through domains; the polymorphic
 * classes for arrays, enums, ranges, multiranges and composites), as
 * schema and operator name — the equality a unique index on the column uses,
 * whatever the session's search_path. A type with no class of its own takes,
 * like PostgreSQL, a class of a type it is binary-coercible to, the
 * preferred type of its category first (varchar → text, not → citext, which
 * also has such a cast). The class is looked up once per distinct base type
 * (it depends on nothing else), not once per column: for 400 tables of five
 * columns the per-column lookup was 62 ms of the subscriber's CPU.
 */
function equalityOperatorsSql(relations: string): string {
  return `WITH RECURSIVE b(rel, name, typid, depth) AS (
       SELECT a.attrelid, a.attname::text, a.atttypid, 0 FROM pg_catalog.pg_attribute a WHERE a.attrelid = ANY (${relations}) AND a.attnum > 0 AND NOT a.attisdropped
       UNION ALL
       SELECT b.rel, b.name, t.typbasetype, b.depth + 1 FROM b JOIN pg_catalog.pg_type t ON t.oid = b.typid WHERE t.typtype = 'd'
     ), base AS (
       SELECT DISTINCT ON (b.rel, b.name) b.rel, b.name, t.oid, t.typtype, t.typelem, t.typlen FROM b JOIN pg_catalog.pg_type t ON t.oid = b.typid
        ORDER BY b.rel, b.name, b.depth DESC
     ), types AS (
       SELECT DISTINCT base.oid, base.typtype, base.typelem, base.typlen FROM base
     ), ops AS (
     SELECT DISTINCT ON (base.oid) base.oid, n.nspname AS nsp, o.oprname AS opr
       FROM types base
       CROSS JOIN LATERAL (SELECT CASE WHEN base.typtype = 'e' THEN 'pg_catalog.anyenum'::pg_catalog.regtype::pg_catalog.oid
                                       WHEN base.typtype = 'r' THEN 'pg_catalog.anyrange'::pg_catalog.regtype::pg_catalog.oid
                                       WHEN base.typtype = 'm' THEN (SELECT t.oid FROM pg_catalog.pg_type t WHERE t.typname = 'anymultirange' AND t.typnamespace = 'pg_catalog'::pg_catalog.regnamespace)
                                       WHEN base.typtype = 'c' THEN 'pg_catalog.record'::pg_catalog.regtype::pg_catalog.oid
                                       WHEN base.typelem <> 0 AND base.typlen = -1 THEN 'pg_catalog.anyarray'::pg_catalog.regtype::pg_catalog.oid
                                       ELSE base.oid END AS want) w
       JOIN pg_catalog.pg_opclass c ON c.opcmethod = (SELECT oid FROM pg_catalog.pg_am WHERE amname = 'btree') AND c.opcdefault
        AND (c.opcintype = w.want
             OR EXISTS (SELECT FROM pg_catalog.pg_cast k WHERE k.castsource = w.want AND k.casttarget = c.opcintype AND k.castmethod = 'b'))
       JOIN pg_catalog.pg_amop ao ON ao.amopfamily = c.opcfamily AND ao.amopstrategy = 3
        AND ao.amoplefttype = c.opcintype AND ao.amoprighttype = c.opcintype
       JOIN pg_catalog.pg_operator o ON o.oid = ao.amopopr
       JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
      ORDER BY base.oid, c.opcintype = w.want DESC,
               (SELECT t.typispreferred FROM pg_catalog.pg_type t WHERE t.oid = c.opcintype) DESC, c.opcintype
     )
     SELECT base.rel, base.name, ops.nsp, ops.opr FROM base JOIN ops ON ops.oid = base.oid`;
}

interface KeyState {
  /** The key's fields as the provider wrote them. */
  fields: Array<string | null>;
  /** Final row image and its shape, or null when the row ends deleted. */
  row: { data: string; shape: RowShape } | null;
  /** False when the first event seen for the key was an INSERT: no row to delete first. */
  existed: boolean;
}

interface PendingTable {
  /** The key definition every pending key of the table is under. */
  keyColumns: string[];
  keys: Map<string, KeyState>;
}

/** Two key definitions (lists of key columns) are the same. */
function sameColumns(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const UNIQUE_VIOLATION = '23505';
const EXCLUSION_VIOLATION = '23P01';
/** Rows held in statements not yet sent (EventApplier.run) before they are sent without waiting for another. */
const HELD_ROWS = 5_000;
/** Updated rows of a table up to which its UPDATE is held as well, with the insert of rows it misses run unconditionally. */
const HELD_UPDATE_ROWS = 500;

/**
 * Applies events to the subscriber, set-based. Pending net effects are kept
 * only within one `apply()` call (one chunk), so memory follows the chunk.
 *
 * A chunk's statements overlap the next chunk's decoding: `apply()` returns
 * once the chunk's flush has started, and the next `apply()` (or `finish()`)
 * waits for it before it sends anything itself, so the subscriber gets the
 * statements in the same order as before. The caller uses the subscriber
 * connection for anything else only after `finish()`, and calls `abandon()`
 * before rolling back after a failure (no statement of the batch may follow
 * its ROLLBACK).
 */
export class EventApplier {
  private pending = new Map<number, PendingTable>();
  private stats = emptyStats();
  /** The TRUNCATE events of one transaction waiting to run together. */
  private truncating: { txid: string; tables: Set<number>; events: number } | null = null;
  /** The previous chunk's flush, running on the subscriber while the next chunk is decoded. */
  private inflight: Promise<void> | null = null;
  /** The batch was given up: no statement is sent any more. */
  private abandoned = false;
  /**
   * Statements whose results nothing waits for (row counts only), held to go
   * out with the next statement that is sent (engine/pipeline.ts: one round
   * trip), in the order they were made.
   */
  private held: Array<{ statement: { name: string; text: string; values: string[] }; counter: 'rowsDeleted' | 'rowsWritten' }> = [];
  private heldRows = 0;

  constructor(
    private readonly subscriber: pg.Client,
    private readonly statements: (tableId: number) => TableStatements | undefined,
    /** The shapes of the events' rows (the caller loads them before each chunk). */
    private readonly shapes: (shapeId: number) => RowShape | undefined,
    /**
     * Composite types known to exist on the subscriber, with their oids; the caller clears it when its
     * transaction rolls back. A statement's name carries its type's oid: one prepared before a rollback
     * removed the type it was parsed with is never executed again (its parameter type is gone).
     */
    private readonly createdTypes: Map<string, number> = new Map(),
    /** Where the subscriber statements' time is counted (a developer's profile; off by default). */
    private readonly phases: Phases = NO_PHASES,
  ) {}

  /**
   * Applies a chunk of events (in event order): its net effect is computed
   * and its flush started; the next call or finish() waits for that flush.
   */
  async apply(events: readonly QueueEvent[]): Promise<void> {
    try {
      await this.collect(events);
      // The previous chunk's statements first: the subscriber gets them in event order.
      await this.settle();
    } catch (err) {
      await this.abandon();
      throw err;
    }
    const work = this.takePending();
    const flushing = (async () => {
      for (const [st, perTable] of work) await this.flushTable(st, perTable);
    })();
    // Awaited by the next apply(), finish() or abandon(); never left unhandled meanwhile.
    flushing.catch(() => undefined);
    this.inflight = flushing;
  }

  /** Waits for the previous chunk's flush (its error, if it failed). */
  private async settle(): Promise<void> {
    const p = this.inflight;
    if (!p) return;
    this.inflight = null;
    await p;
  }

  /** Gives the batch up: sends no further statement and waits until none is in flight. Call before a ROLLBACK. */
  async abandon(): Promise<void> {
    this.abandoned = true;
    this.held = [];
    this.heldRows = 0;
    const p = this.inflight;
    this.inflight = null;
    if (p) await p.catch(() => undefined);
  }

  /** The pending net effects with their tables' statements, taken (the next chunk starts afresh). */
  private takePending(): Array<[TableStatements, PendingTable]> {
    const work: Array<[TableStatements, PendingTable]> = [];
    for (const [tableId, perTable] of this.pending) work.push([this.statements(tableId)!, perTable]);
    this.pending = new Map();
    return work;
  }

  /** Folds a chunk's events into the pending net effects (statements only where order needs them: TRUNCATE, a key change). */
  private async collect(events: readonly QueueEvent[]): Promise<void> {
    for (const e of events) {
      if (this.truncating && (this.truncating.txid === e.txid ? e.op !== 'T' : this.truncating.tables.has(e.table) || e.op === 'T')) {
        await this.settle();
        await this.runTruncate();
      }
      if (e.op === 'T') {
        if (!this.truncating) {
          await this.settle();
          await this.flush();
          this.truncating = { txid: e.txid, tables: new Set(), events: 0 };
        }
        this.truncating.events++;
        if (this.statements(e.table)) this.truncating.tables.add(e.table);
        continue;
      }
      const st = this.statements(e.table);
      if (!st) continue;
      const shape = e.shape === null ? undefined : this.shapes(e.shape);
      // A shape belongs to one table: an event naming another table's shape (a writer can set the session
      // setting the capture caches its shape in) is refused rather than read with the wrong columns.
      if (!shape || shape.tableId !== e.table) throw new Error(`event of table ${st.qualified} names row shape ${e.shape}, which is not one of that table's shapes on the provider`);
      this.stats.events++;
      let perTable = this.pending.get(e.table);
      if (perTable && perTable.keyColumns !== shape.keyColumns && !sameColumns(perTable.keyColumns, shape.keyColumns)) {
        // The table's key changed (captured again with other key columns): what came before goes first.
        await this.settle();
        await this.flushTable(st, perTable);
        this.pending.delete(e.table);
        perTable = undefined;
      }
      if (!perTable) this.pending.set(e.table, (perTable = { keyColumns: shape.keyColumns, keys: new Map() }));
      let fields: Array<string | null>;
      if (e.op === 'D') {
        fields = parseRowText(e.key!);
      } else {
        const shaped = st.forShape(shape);
        const positions = shaped.keyPositions;
        const all = parseRowText(e.data!, shaped.lastKeyPosition);
        if (positions.length === 1 && positions[0] === 0) fields = all.length === 1 ? all : [all[0] ?? null];
        else fields = positions.map((p) => all[p] ?? null);
      }
      const id = keyIdentity(fields);
      const row = e.op === 'D' ? null : { data: e.data!, shape };
      const state = perTable.keys.get(id);
      if (state) state.row = row;
      else perTable.keys.set(id, { fields, row, existed: e.op !== 'I' });
    }
  }

  /**
   * Waits for the last chunk's flush and runs what waits for the end of the
   * batch (a TRUNCATE); every statement has reached the subscriber when it
   * returns. Call after the last chunk.
   */
  async finish(): Promise<void> {
    await this.finishHolding();
    try {
      await this.sendHeld();
    } catch (err) {
      await this.abandon();
      throw err;
    }
  }

  /**
   * As finish(), but the last statements nothing waits for stay held, to
   * go out with `commit()`'s statements; the caller sends nothing else
   * before commit() (or abandon()).
   */
  async finishHolding(): Promise<void> {
    try {
      await this.settle();
      if (this.truncating) await this.runTruncate();
      await this.flush();
    } catch (err) {
      await this.abandon();
      throw err;
    }
  }

  /**
   * Sends the held statements and then `statements` (texts without
   * parameters: the position, COMMIT) in one round trip. A failure leaves
   * the transaction aborted: the caller rolls back.
   */
  async commit(statements: readonly string[]): Promise<void> {
    if (!this.held.length) await this.subscriber.query(statements.join('; '));
    else await this.sendWithHeld(statements.map((text) => ({ text })), 'statements');
  }

  /** Sends the held statements (one round trip), when there are any. */
  private async sendHeld(): Promise<void> {
    if (this.held.length) await this.sendWithHeld([], 'statements');
  }

  /**
   * The held statements, then `then`, in one round trip (engine/pipeline.ts);
   * the held ones' row counts counted, `then`'s returned.
   */
  private async sendWithHeld(then: PipelinedStatement[], phase: string): Promise<number[]> {
    if (this.abandoned) throw new Error('internal: a statement of a batch given up');
    const held = this.held;
    this.held = [];
    this.heldRows = 0;
    const counts = await this.phases.time(phase, () => runPipeline(this.subscriber, [...held.map((h) => h.statement), ...then]));
    held.forEach((h, i) => (this.stats[h.counter] += counts[i] ?? 0));
    return counts.slice(held.length);
  }

  private async flush(): Promise<void> {
    for (const [st, perTable] of this.takePending()) await this.flushTable(st, perTable);
  }

  private async ensureTypes(st: TableStatements): Promise<void> {
    for (const [name, type] of st.types) {
      if (this.createdTypes.has(name)) continue;
      const oid = async () =>
        (await this.subscriber.query<{ oid: number }>('SELECT t.oid FROM pg_catalog.pg_type t WHERE t.typname = $1 AND t.typnamespace = $2::pg_catalog.regnamespace', [name, 'pgconvey'])).rows[0]
          ?.oid;
      await this.sendHeld();
      let found = await oid();
      if (found === undefined) {
        // Another worker may create the same type at the same moment: its name is its definition.
        await this.subscriber.query('SAVEPOINT pgconvey_type');
        try {
          await this.subscriber.query(type.create);
          await this.subscriber.query('RELEASE SAVEPOINT pgconvey_type');
        } catch (err) {
          await this.subscriber.query('ROLLBACK TO SAVEPOINT pgconvey_type');
          if ((err as { code?: string }).code !== '23505' && (err as { code?: string }).code !== '42710') throw err;
        }
        found = await oid();
        if (found === undefined) throw new Error(`internal: type pgconvey.${name} is missing right after CREATE TYPE`);
      }
      this.createdTypes.set(name, found);
    }
  }

  private async flushTable(st: TableStatements, perTable: PendingTable): Promise<void> {
    if (this.abandoned) throw new Error('internal: a statement of a batch given up');
    const keys = st.forKey(perTable.keyColumns);
    const fresh: Array<{ data: string; shape: RowShape }> = []; // final rows of keys first seen inserted: they cannot exist yet
    const updated: Array<{ data: string; shape: RowShape }> = []; // final rows of keys that existed before
    const gone: string[] = []; // keys that existed and end deleted
    for (const state of perTable.keys.values()) {
      if (state.row === null) {
        if (state.existed) gone.push(rowText(state.fields));
      } else {
        (state.existed ? updated : fresh).push(state.row);
      }
    }
    // Rows carry the columns the provider's table had when they were captured: around an ALTER TABLE,
    // one flush can hold rows of two shapes, each written with exactly its own columns.
    const groups = new Map<number, { shape: RowShape; fresh: string[]; updated: string[] }>();
    for (const [list, into] of [
      [fresh, 'fresh'],
      [updated, 'updated'],
    ] as const) {
      for (const r of list) {
        let g = groups.get(r.shape.shapeId);
        if (!g) groups.set(r.shape.shapeId, (g = { shape: r.shape, fresh: [], updated: [] }));
        g[into].push(r.data);
      }
    }
    const shapes = [...groups.values()].map((g) => ({ ...g, st: st.forShape(g.shape) }));
    await this.ensureTypes(st);
    if (st.keyIsUnique && !st.mustReinsert) {
      const savepoint = st.otherConstraints;
      // Only the row counts: the next chunk's decoding counts events meanwhile.
      const before = { rowsDeleted: this.stats.rowsDeleted, rowsWritten: this.stats.rowsWritten };
      // Under a savepoint every statement is sent at once (its error is caught here); else those whose
      // row count nothing waits for are held to go out with the next statement sent.
      const hold = !savepoint;
      if (savepoint) {
        await this.sendHeld();
        await this.subscriber.query('SAVEPOINT pgconvey_flush');
      }
      try {
        await this.run(keys.deleteKeys, gone, 'rowsDeleted', hold);
        for (const g of shapes) {
          if (hold && g.st.update && g.updated.length <= HELD_UPDATE_ROWS) {
            // Few rows: the UPDATE is held too, and the insert of rows it did not find runs whatever its count
            // (it sees the UPDATE's rows, so it inserts the same rows the count would have asked for) — an
            // index probe per row instead of a round trip.
            await this.run(g.st.update, g.updated, 'rowsWritten', true);
            await this.run(g.st.insertMissing!, g.updated, 'rowsWritten', true);
          } else {
            const changed = g.st.update ? await this.run(g.st.update, g.updated, 'rowsWritten', false) : 0;
            // Rows that should have been there but were not (e.g. deleted on the subscriber by hand); with
            // nothing to update (every column a key column) the missing ones are inserted the same way.
            if (changed < g.updated.length) await this.run(g.st.insertMissing!, g.updated, 'rowsWritten', hold);
          }
          await this.run(g.st.insert, g.fresh, 'rowsWritten', hold);
        }
        if (savepoint) await this.subscriber.query('RELEASE SAVEPOINT pgconvey_flush');
        return;
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (!savepoint || (code !== UNIQUE_VIOLATION && code !== EXCLUSION_VIOLATION)) throw err;
        await this.subscriber.query('ROLLBACK TO SAVEPOINT pgconvey_flush');
        this.stats.rowsDeleted = before.rowsDeleted;
        this.stats.rowsWritten = before.rowsWritten;
        // Two rows swapped a unique value: fall through to delete-then-insert.
      }
    }
    // Every key that existed before (made only here: the unique-key path above does not need it).
    const existed: string[] = [];
    for (const state of perTable.keys.values()) if (state.existed) existed.push(rowText(state.fields));
    await this.run(keys.deleteKeys, existed, 'rowsDeleted', true);
    for (const g of shapes) await this.run(g.st.insert, [...g.updated, ...g.fresh], 'rowsWritten', true);
  }

  /**
   * Runs a statement on an array of row texts; returns the rows it touched.
   * `hold`: nothing waits for its row count, so once the statement is
   * prepared on the connection it is held (returns 0) and goes out with the
   * next statement sent — up to HELD_ROWS rows held, so memory still
   * follows the chunk. A statement sent takes the held ones with it, in one
   * round trip.
   */
  private async run(st: Statement, items: string[], counter: 'rowsDeleted' | 'rowsWritten', hold: boolean): Promise<number> {
    if (!items.length) return 0;
    if (this.abandoned) throw new Error('internal: a statement of a batch given up');
    const values = [arrayLiteral(items)];
    const oid = this.createdTypes.get(st.type);
    const name = oid === undefined ? st.name : `${st.name}_${oid}`;
    const statement = { name, text: st.text, values };
    const prepared = pipelineReady(this.subscriber, name, st.text);
    if (hold && prepared) {
      this.held.push({ statement, counter });
      this.heldRows += items.length;
      if (this.heldRows >= HELD_ROWS) await this.sendHeld();
      return 0;
    }
    const phase = this.phases.on ? `sql_${st.name.slice(4, 5)}` : 'statements';
    let n: number;
    if (prepared && this.held.length) {
      n = (await this.sendWithHeld([statement], phase))[0] ?? 0;
    } else {
      await this.sendHeld();
      n = (await this.phases.time(phase, () => this.subscriber.query({ name, text: st.text, values }))).rowCount ?? 0;
    }
    this.stats[counter] += n;
    return n;
  }

  private async runTruncate(): Promise<void> {
    const group = this.truncating!;
    this.truncating = null;
    this.stats.events += group.events;
    const targets = [...group.tables].map((id) => this.statements(id)).filter((s): s is TableStatements => !!s);
    if (!targets.length) return;
    await this.sendHeld();
    await this.phases.time('statements', () => this.subscriber.query(`TRUNCATE ${targets.map((t) => `${t.only}${t.qualified}`).join(', ')}`));
    this.stats.truncates += targets.length;
  }

  takeStats(): ApplyStats {
    const s = this.stats;
    this.stats = emptyStats();
    return s;
  }
}
