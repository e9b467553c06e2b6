/**
 * The schema copy's choice of objects, without I/O: pg_restore's table of
 * contents (`pg_restore -l` of a `pg_dump --schema-only -Fc` of the provider,
 * already in pg_dump's dependency order) is parsed, and the entries the
 * subscriber needs are kept — the selected tables that are missing there,
 * what they depend on (schemas, types, domains, collations, extensions,
 * sequences used by defaults whether owned or not, functions used by defaults,
 * checks and triggers, partition parents), what belongs to each table created
 * (indexes, constraints, defaults, triggers, partitions, comments, grants) —
 * following the provider's pg_depend. Objects present on the subscriber are
 * left alone. `all` keeps every object of the dump that is missing there.
 *
 * One order is changed: pg_dump attaches partitions (`TABLE ATTACH`) before
 * their indexes exist; attached to a parent that already has its keys (a
 * partition created later on the provider), the partition gets them built by
 * ATTACH and pg_dump's own `ADD CONSTRAINT … PRIMARY KEY` then fails
 * ("multiple primary keys"). Attaching after the partition's indexes and
 * constraints are created lets PostgreSQL adopt the matching ones instead,
 * which works for a new parent and an existing one alike (the `INDEX ATTACH`
 * that follow are then no-ops).
 */

export interface TocEntry {
  dumpId: number;
  /** pg_class oid of the object's catalog, 0 for entries without an object of their own (ACL, COMMENT, TABLE ATTACH…). */
  catalog: number;
  oid: number;
  /** pg_dump's entry type: `TABLE`, `FK CONSTRAINT`, `TABLE ATTACH`… */
  type: string;
  schema: string | null;
  tag: string;
  owner: string;
  /** The list line, as `pg_restore -L` reads it back. */
  line: string;
}

/** pg_dump's entry types of more than one word (the others are one word). */
const MULTI_WORD_TYPES = [
  'MATERIALIZED VIEW DATA',
  'PUBLICATION TABLES IN SCHEMA',
  'TEXT SEARCH CONFIGURATION',
  'TEXT SEARCH DICTIONARY',
  'TEXT SEARCH TEMPLATE',
  'TEXT SEARCH PARSER',
  'FOREIGN DATA WRAPPER',
  'DATABASE PROPERTIES',
  'PROCEDURAL LANGUAGE',
  'SEQUENCE OWNED BY',
  'MATERIALIZED VIEW',
  'PUBLICATION TABLE',
  'CHECK CONSTRAINT',
  'OPERATOR FAMILY',
  'OPERATOR CLASS',
  'ACCESS METHOD',
  'BLOB METADATA',
  'EVENT TRIGGER',
  'FK CONSTRAINT',
  'FOREIGN TABLE',
  'INDEX ATTACH',
  'LARGE OBJECT',
  'ROW SECURITY',
  'SEQUENCE SET',
  'TABLE ATTACH',
  'USER MAPPING',
  'DEFAULT ACL',
  'SHELL TYPE',
  'TABLE DATA',
];

/** Parses `pg_restore -l` output: one entry per line that is not a comment. */
export function parseToc(list: string): TocEntry[] {
  const out: TocEntry[] = [];
  for (const line of list.split('\n')) {
    const m = /^(\d+); (\d+) (\d+) (.*)$/.exec(line);
    if (!m) continue;
    let rest = m[4]!;
    const type = MULTI_WORD_TYPES.find((t) => rest.startsWith(`${t} `)) ?? rest.split(' ')[0]!;
    rest = rest.slice(type.length + 1);
    const parts = /^(\S+) (.*) (\S*)$/.exec(rest);
    const [schema, tag, owner] = parts ? [parts[1]!, parts[2]!, parts[3]!] : [rest.split(' ')[0] ?? '-', rest.split(' ').slice(1).join(' '), ''];
    out.push({ dumpId: Number(m[1]), catalog: Number(m[2]), oid: Number(m[3]), type, schema: schema === '-' ? null : schema, tag, owner, line });
  }
  return out;
}

/** One SQL block per entry of a `pg_restore -L LIST -f -` script, in order, and what comes before the first (session settings). */
export interface ScriptEntry {
  entry: TocEntry;
  sql: string;
}

/**
 * Splits a plain script by pg_dump's entry headers (`-- Name: …; Type: …;
 * Schema: …; Owner: …`), each block with its entry, in the script's order
 * (pg_restore keeps the list's order except that grants come in a pass of
 * their own at the end). Returns null when the headers and the entries do not
 * match one to one (the script is then not the one listed).
 */
export function splitScript(script: string, entries: TocEntry[]): { preamble: string; entries: ScriptEntry[] } | null {
  const text = script
    .split('\n')
    .filter((line) => !line.startsWith('\\'))
    .join('\n');
  const header = /^--\n-- (?:Data for )?Name: (.*); Type: (.*); Schema: (.*); Owner: .*\n--\n/gm;
  const found = [...text.matchAll(header)];
  if (found.length !== entries.length) return null;
  const pending = new Map<string, TocEntry[]>();
  const id = (type: string, schema: string | null, tag: string) => `${type}\u0000${schema ?? '-'}\u0000${tag}`;
  for (const e of entries) {
    const k = id(e.type, e.schema, e.tag);
    (pending.get(k) ?? pending.set(k, []).get(k)!).push(e);
  }
  const out: ScriptEntry[] = [];
  for (let i = 0; i < found.length; i++) {
    const m = found[i]!;
    const entry = pending.get(id(m[2]!, m[3] === '-' ? null : m[3]!, m[1]!))?.shift();
    if (!entry) return null;
    const end = i + 1 < found.length ? found[i + 1]!.index : text.length;
    out.push({ entry, sql: text.slice(m.index + m[0].length, end).trim() });
  }
  return { preamble: text.slice(0, found[0]?.index ?? text.length), entries: out };
}

/** A pg_depend row of the provider: `obj` depends on `ref` (`classid:objid` keys). */
export interface DependRow {
  obj: string;
  ref: string;
  /** 'n' normal, 'a' auto, 'i' internal, 'e' extension member. */
  type: string;
}

/** What the provider says about an entry's object. */
export interface ObjectInfo {
  /** `pg_identify_object`: `type identity`, e.g. `table public.film`; the same text identifies it on the subscriber. */
  identity: string;
  /** pg_class.relkind for relations. */
  relkind?: string;
  /** For a constraint with an index (key, unique, exclusion): the index's name. */
  indexName?: string;
  /** An object pgconvey made (a capture or fence trigger): never copied. */
  pgconvey?: boolean;
}

export interface SelectionInput {
  entries: TocEntry[];
  depends: DependRow[];
  /** By `classid:objid` of each entry with an object. */
  info: ReadonlyMap<string, ObjectInfo>;
  /** Identities (`type identity`) of the objects present on the subscriber. */
  present: ReadonlySet<string>;
  /** `classid:objid` of the tables to create (selected by the queue, missing on the subscriber). */
  seeds: string[];
  /** `classid:objid` of every table the queue replicates: in `tables` mode no other table is created. */
  selected: ReadonlySet<string>;
  mode: 'tables' | 'all';
}

export interface Selection {
  /** The entries to run, in order. */
  entries: TocEntry[];
  /** Tables the copy would need but the queue does not replicate (a foreign key to them…): `what` needs `table`. */
  unselected: Array<{ table: string; neededBy: string }>;
}

/** The first object id of a normal (user) object; below it objects come with every database. */
const FIRST_NORMAL_OID = 16384;
const PG_TRIGGER = 2620;

/** The entries the subscriber needs, in a safe order (see the header). */
export function selectEntries(input: SelectionInput): Selection {
  const key = (e: TocEntry) => `${e.catalog}:${e.oid}`;
  const entryOf = new Map(input.entries.filter((e) => e.catalog !== 0).map((e) => [key(e), e]));
  const deps = new Map<string, DependRow[]>();
  const dependents = new Map<string, DependRow[]>();
  for (const d of input.depends) {
    (deps.get(d.obj) ?? deps.set(d.obj, []).get(d.obj)!).push(d);
    (dependents.get(d.ref) ?? dependents.set(d.ref, []).get(d.ref)!).push(d);
  }
  const oidOf = (k: string) => Number(k.slice(k.indexOf(':') + 1));
  const isTable = (k: string) => ['r', 'p', 'f'].includes(input.info.get(k)?.relkind ?? '');
  const name = (k: string) => input.info.get(k)?.identity ?? k;

  const create = new Set<string>();
  const visited = new Set<string>();
  const unselected: Array<Selection['unselected'][number] & { key: string }> = [];
  /** `how`: a seed or an object that belongs to one being created (a partition, an index…) may be a table the queue does not select; a dependency may not. */
  const need = (k: string, how: 'seed' | 'attached' | 'parent' | 'dependency', by: string) => {
    if (oidOf(k) < FIRST_NORMAL_OID) return;
    const entry = entryOf.get(k);
    const info = input.info.get(k);
    if (!entry || !info) {
      // No entry of its own (an array or row type, a view's rule, a constraint's index): its owner's, if any.
      if (visited.has(k)) return;
      visited.add(k);
      for (const d of deps.get(k) ?? []) if (d.type === 'i' || d.type === 'e') need(d.ref, how, by);
      return;
    }
    if (info.pgconvey) return;
    if (input.present.has(info.identity)) {
      // Present: nothing of it is created — but the partitions of a partitioned table are looked at one by one.
      if (visited.has(k)) return;
      visited.add(k);
      if (info.relkind === 'p') for (const d of dependents.get(k) ?? []) if (d.type === 'a' && isTable(d.obj)) need(d.obj, 'attached', name(k));
      return;
    }
    if (input.mode === 'tables' && isTable(k) && how === 'dependency' && !input.selected.has(k) && !create.has(k)) {
      // Unless it is created anyway (a partition parent, met again through its own index), this is a table the queue does not replicate.
      if (!unselected.some((u) => u.key === k && u.neededBy === by)) unselected.push({ key: k, table: name(k), neededBy: by });
      return;
    }
    if (visited.has(k)) return;
    visited.add(k);
    create.add(k);
    for (const d of deps.get(k) ?? []) {
      if (d.type === 'e') need(d.ref, 'dependency', name(k));
      else if (d.type === 'n' || d.type === 'a') {
        // An owned sequence (OWNED BY, an 'a' dependency) needs no table: SEQUENCE OWNED BY follows the table.
        if (d.type === 'a' && info.relkind === 'S') continue;
        need(d.ref, d.type === 'a' && isTable(k) && isTable(d.ref) ? 'parent' : 'dependency', name(k));
      }
    }
    for (const r of dependents.get(k) ?? []) {
      if (r.type !== 'a' && r.type !== 'i') continue;
      if (entryOf.has(r.obj)) {
        // What belongs to it: indexes, constraints, defaults, triggers, rules, policies, partitions, owned sequences.
        need(r.obj, 'attached', name(k));
      } else if (!r.obj.startsWith(`${PG_TRIGGER}:`)) {
        // Part of it written with it (an inline default or check, a view's rule, a composite type's columns):
        // what that part uses — sequences, functions, types, tables. (Not the internal triggers of a foreign key
        // that references it: those belong to the referencing table's constraint.)
        for (const d of deps.get(r.obj) ?? []) if (d.type === 'n' && d.ref !== k) need(d.ref, 'dependency', name(k));
      }
    }
  };
  for (const s of input.seeds) need(s, 'seed', name(s));
  if (input.mode === 'all') for (const e of input.entries) if (e.catalog !== 0) need(key(e), 'seed', name(key(e)));

  // Entries without an object of their own go with the object they are about.
  const created = input.entries.filter((e) => e.catalog !== 0 && create.has(key(e)));
  const bySchema = (schema: string | null, tag: string) => `${schema ?? '-'}\u0000${tag}`;
  const about = new Set<string>();
  const relations = new Set<string>();
  const indexes = new Set<string>();
  for (const e of created) {
    const words = new Set([e.type, e.type === 'FK CONSTRAINT' ? 'CONSTRAINT' : e.type, ['TABLE', 'VIEW', 'MATERIALIZED VIEW', 'FOREIGN TABLE', 'SEQUENCE'].includes(e.type) ? 'TABLE' : e.type, e.type === 'DOMAIN' ? 'TYPE' : e.type]);
    for (const w of words) about.add(bySchema(e.schema, `${w} ${e.tag}`));
    if (['CONSTRAINT', 'FK CONSTRAINT', 'TRIGGER', 'POLICY', 'RULE'].includes(e.type)) {
      const space = e.tag.indexOf(' ');
      about.add(bySchema(e.schema, `${e.type === 'FK CONSTRAINT' ? 'CONSTRAINT' : e.type} ${e.tag.slice(space + 1)} ON ${e.tag.slice(0, space)}`));
    }
    if (['TABLE', 'VIEW', 'MATERIALIZED VIEW', 'FOREIGN TABLE'].includes(e.type)) relations.add(bySchema(e.schema, e.tag));
    if (e.type === 'INDEX') indexes.add(bySchema(e.schema, e.tag));
    const indexName = input.info.get(key(e))?.indexName;
    if (e.type === 'CONSTRAINT' && indexName) indexes.add(bySchema(e.schema, indexName));
  }
  const kept = input.entries.filter((e) => {
    if (e.catalog !== 0) return create.has(key(e));
    switch (e.type) {
      case 'ACL':
      case 'COMMENT':
      case 'SECURITY LABEL': {
        const column = /^COLUMN (.*)\.[^.]*$/.exec(e.tag);
        return about.has(bySchema(e.schema, e.tag)) || (column !== null && relations.has(bySchema(e.schema, column[1]!)));
      }
      case 'TABLE ATTACH':
        return relations.has(bySchema(e.schema, e.tag));
      case 'INDEX ATTACH':
        return indexes.has(bySchema(e.schema, e.tag));
      case 'SEQUENCE OWNED BY':
        return about.has(bySchema(e.schema, `SEQUENCE ${e.tag}`));
      default:
        return false;
    }
  });

  // TABLE ATTACH after the last index or constraint (see the header).
  const attaches = kept.filter((e) => e.type === 'TABLE ATTACH');
  const rest = kept.filter((e) => e.type !== 'TABLE ATTACH');
  const later = ['INDEX ATTACH', 'TRIGGER', 'FK CONSTRAINT', 'RULE', 'POLICY'];
  let at = rest.reduce((last, e, i) => (e.type === 'CONSTRAINT' || e.type === 'INDEX' ? i : last), -1);
  if (at < 0) {
    const first = rest.findIndex((e) => later.includes(e.type));
    at = first < 0 ? rest.length - 1 : first - 1;
  }
  const ordered = [...rest.slice(0, at + 1), ...attaches, ...rest.slice(at + 1)];
  return { entries: ordered, unselected: unselected.filter((u) => !create.has(u.key)).map(({ table, neededBy }) => ({ table, neededBy })) };
}

/** `TABLE public.film`, for messages. */
export function describeEntry(e: TocEntry): string {
  if (e.type === 'CONSTRAINT' || e.type === 'FK CONSTRAINT' || e.type === 'TRIGGER' || e.type === 'POLICY' || e.type === 'RULE' || e.type === 'DEFAULT') {
    const space = e.tag.indexOf(' ');
    return `${e.type} ${e.tag.slice(space + 1)} on ${e.schema ? `${e.schema}.` : ''}${e.tag.slice(0, space)}`;
  }
  return `${e.type} ${e.schema && !['ACL', 'COMMENT'].includes(e.type) ? `${e.schema}.` : ''}${e.tag}${['ACL', 'COMMENT'].includes(e.type) && e.schema ? ` (schema ${e.schema})` : ''}`;
}
