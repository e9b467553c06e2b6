/**
 * Random table definitions for the exactness test: columns drawn from the
 * type catalog, a single or composite key (text keys with collations,
 * timestamptz, numeric, uuid, bytea …), extra plain / partial / expression
 * unique indexes and EXCLUDE constraints, identity and generated columns,
 * reserved words as column names. Deterministic in (rng, environment,
 * excluded features).
 */
import type { Rng } from '../random.js';
import { qi } from './comparer.js';
import { PRELUDE, PRELUDE_DEPS, availableTypes, typeById, type Environment, type TypeSpec } from './types.js';

export type ColumnRole = 'key' | 'unique' | 'live' | 'identity' | 'gbase' | 'generated' | 'data';

export interface ColumnDef {
  name: string;
  type: TypeSpec;
  role: ColumnRole;
  notNull: boolean;
  collation?: string;
  /** For role `unique`: which unique index (0, 1) the column carries. */
  uniqueIndex?: number;
}

export type UniqueKind = 'plain' | 'partial' | 'expression' | 'exclude';

export interface TableDef {
  name: string;
  columns: ColumnDef[];
  key: string[];
  uniques: Array<{ column: string; kind: UniqueKind }>;
  /** CREATE TABLE and index statements, in order. */
  ddl: string[];
  /** The parent table when this one INHERITS. */
  parent?: string;
}

/** Column names that are reserved words (or otherwise need quoting). */
const RESERVED = ['window', 'collation', 'fetch', 'lateral', 'returning', 'variadic', 'current_role', 'current_schema', 'user', 'select', 'order', 'offset', 'limit', 'table', 'column'];
const ODD = ['Mixed Case', 'with space', 'ünïcödé', 'a"quote', 'x.y'];

export interface SchemaOptions {
  allowed: (feature: string) => boolean;
  tables?: number;
}

/** Prelude statements (extensions, enums, domains, composite types) the tables need, in dependency order. */
export function preludeFor(tables: TableDef[]): string[] {
  const needed = new Set<string>();
  const add = (n: string) => {
    for (const d of PRELUDE_DEPS[n] ?? []) add(d);
    needed.add(n);
  };
  for (const t of tables) for (const c of t.columns) for (const n of c.type.needs ?? []) add(n);
  return Object.keys(PRELUDE)
    .filter((n) => needed.has(n))
    .map((n) => PRELUDE[n]!.sql);
}

export function generateTables(r: Rng, env: Environment, opts: SchemaOptions): TableDef[] {
  const allowed = opts.allowed;
  const types = availableTypes(env, allowed);
  const keyTypes = types.filter((t) => t.key && (t.keyFeatures ?? []).every(allowed));
  const count = opts.tables ?? r.int(2, 4);
  const tables: TableDef[] = [];
  const min = Math.min(env.sourceMajor, env.targetMajor);
  for (let ti = 0; ti < count; ti++) {
    const name = r.chance(0.15) ? `T ${ti} "ü"` : `t${ti}`;
    const columns: ColumnDef[] = [];
    const used = new Set<string>();
    const colName = (base: string): string => {
      let n = base;
      if (allowed('reserved-words') && r.chance(0.06)) n = r.pick(RESERVED);
      else if (r.chance(0.1)) n = r.pick(ODD);
      while (used.has(n)) n = `${n}_${columns.length}`;
      used.add(n);
      return n;
    };
    // The key.
    const keyShape = r.int(0, 9);
    const keyCount = keyShape < 5 ? 1 : keyShape < 8 ? 2 : 3;
    for (let k = 0; k < keyCount; k++) {
      // Half of the other keys come from the types keys are most often made of in applications.
      const favourite = keyTypes.filter((t) => ['timestamptz', 'numeric', 'text', 'uuid', 'bytea', 'date'].includes(t.id));
      const type = keyShape <= 1 ? typeById('int8') : r.chance(0.5) && favourite.length ? r.pick(favourite) : r.pick(keyTypes);
      const col: ColumnDef = { name: colName(`k${k}_${type.id}`), type, role: 'key', notNull: true };
      if (['text', 'varchar'].includes(type.id) && env.collations.length && allowed('collation') && r.chance(0.6)) col.collation = r.pick(env.collations);
      columns.push(col);
    }
    // Data columns.
    const nData = r.int(2, 7);
    for (let i = 0; i < nData; i++) {
      const type = r.pick(types);
      // A composite whose fields are all NULL counts as NULL for NOT NULL: composites stay nullable.
      columns.push({ name: colName(`c${i}_${type.id}`), type, role: 'data', notNull: !type.needs?.some((n) => n === 'addr' || n === 'nested') && r.chance(0.1) });
    }
    // Unique indexes beyond the key.
    const uniques: TableDef['uniques'] = [];
    const uniqueTypes = keyTypes.filter((t) => t.id !== 'int2');
    const nUnique = r.chance(0.5) ? r.int(1, 2) : 0;
    for (let u = 0; u < nUnique; u++) {
      const kinds: UniqueKind[] = ['plain'];
      if (allowed('partial-unique')) kinds.push('partial');
      if (allowed('expression-unique')) kinds.push('expression');
      if (allowed('exclude')) kinds.push('exclude');
      let kind = r.pick(kinds);
      const type = kind === 'expression' ? r.pick(uniqueTypes.filter((t) => t.uniqueExpression)) : r.pick(uniqueTypes);
      if (!type) kind = 'plain';
      const col: ColumnDef = { name: colName(`u${u}_${type.id}`), type, role: 'unique', notNull: false, uniqueIndex: u };
      columns.push(col);
      uniques.push({ column: col.name, kind });
    }
    if (uniques.some((u) => u.kind === 'partial')) columns.push({ name: colName('live'), type: typeById('bool'), role: 'live', notNull: true });
    if (allowed('identity') && r.chance(0.25)) columns.push({ name: colName('ident'), type: typeById('int8'), role: 'identity', notNull: true });
    if (allowed('generated') && min >= 12 && r.chance(0.25)) {
      columns.push({ name: colName('gbase'), type: typeById('int4'), role: 'gbase', notNull: false });
      columns.push({ name: colName('gen'), type: typeById('int8'), role: 'generated', notNull: false });
    }
    // Shuffle the non-key columns a little, so keys are not always first.
    if (r.chance(0.3)) columns.push(columns.shift()!);
    const key = columns.filter((c) => c.role === 'key').map((c) => c.name);
    const t: TableDef = { name, columns, key, uniques, ddl: [] };
    t.ddl = tableDdl(t, r);
    tables.push(t);
  }
  const parent = tables[0];
  if (allowed('inheritance') && parent && r.chance(0.3) && !parent.columns.some((c) => c.role === 'identity' || c.role === 'generated')) {
    // Unique constraints are not inherited: in the child the unique and live columns are plain data.
    const child: TableDef = {
      name: `${parent.name}_child`,
      columns: [...parent.columns.map((c) => ({ ...c, role: c.role === 'unique' || c.role === 'live' ? ('data' as const) : c.role })), { name: 'extra_c', type: typeById('text'), role: 'data', notNull: false }],
      key: parent.key,
      uniques: [],
      ddl: [],
      parent: parent.name,
    };
    child.ddl = [`CREATE TABLE public.${qi(child.name)} (${qi('extra_c')} text, PRIMARY KEY (${child.key.map(qi).join(', ')})) INHERITS (public.${qi(parent.name)})`];
    tables.push(child);
  }
  return tables;
}

function columnSql(c: ColumnDef, t: TableDef): string {
  let s = `${qi(c.name)} ${c.type.sql}`;
  if (c.collation) s += ` COLLATE ${qi(c.collation)}`;
  if (c.role === 'identity') s += ` GENERATED ${c.name.length % 2 ? 'ALWAYS' : 'BY DEFAULT'} AS IDENTITY`;
  if (c.role === 'generated') s += ` GENERATED ALWAYS AS (${qi(t.columns.find((x) => x.role === 'gbase')!.name)}::bigint * 2 + 1) STORED`;
  if (c.notNull && c.role !== 'key' && c.role !== 'identity') s += ' NOT NULL';
  return s;
}

function tableDdl(t: TableDef, r: Rng): string[] {
  const q = `public.${qi(t.name)}`;
  const ddl = [`CREATE TABLE ${q} (${t.columns.map((c) => columnSql(c, t)).join(', ')}, PRIMARY KEY (${t.key.map(qi).join(', ')}))`];
  const live = t.columns.find((c) => c.role === 'live');
  t.uniques.forEach((u, i) => {
    const col = t.columns.find((c) => c.name === u.column)!;
    const ix = qi(`${t.name}_u${i}`);
    if (u.kind === 'plain') ddl.push(r.chance(0.5) ? `ALTER TABLE ${q} ADD UNIQUE (${qi(u.column)})` : `CREATE UNIQUE INDEX ${ix} ON ${q} (${qi(u.column)})`);
    if (u.kind === 'partial') ddl.push(`CREATE UNIQUE INDEX ${ix} ON ${q} (${qi(u.column)}) WHERE ${qi(live!.name)}`);
    if (u.kind === 'expression') ddl.push(`CREATE UNIQUE INDEX ${ix} ON ${q} (${col.type.uniqueExpression!(qi(u.column))})`);
    if (u.kind === 'exclude') ddl.push(`ALTER TABLE ${q} ADD EXCLUDE USING btree (${qi(u.column)} WITH =)`);
  });
  return ddl;
}
