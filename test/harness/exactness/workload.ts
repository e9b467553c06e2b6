/**
 * Random workloads for the exactness test, as one deterministic timeline:
 * several writers (each its own connection, each transaction with its own
 * random TimeZone / DateStyle / IntervalStyle / bytea_output /
 * extra_float_digits) run transactions whose statements interleave with
 * other writers' open transactions, ticks, apply-worker steps, worker
 * restarts and the start of the initial copy. Inserts, updates, key changes
 * and swaps, swaps of unique values, deletes and re-inserts, savepoints,
 * rolled-back and long transactions, TRUNCATEs.
 *
 * A model of which keys each writer's rows have keeps statements valid, and
 * writers own disjoint key ranges and unique values, so no writer ever waits
 * for another and the provider's end state is a function of the timeline.
 */
import type { Rng } from '../random.js';
import { qi } from './comparer.js';
import type { ColumnDef, TableDef } from './schema.js';
import type { Environment } from './types.js';

export interface SessionSettings {
  TimeZone: string;
  DateStyle: string;
  IntervalStyle: string;
  bytea_output: string;
  extra_float_digits: number;
}

export interface Item {
  sql: string;
  /** Tables the item touches (for shrinking by table). */
  tables: string[];
}

export interface Txn {
  id: number;
  writer: number;
  settings: SessionSettings;
  items: Array<Item | null>;
  end: 'commit' | 'rollback';
  /** For a TRUNCATE transaction: the tables it empties (children included). */
  truncated?: string[];
}

export type TimelineEvent =
  | { kind: 'begin' | 'end'; txn: number }
  | { kind: 'item'; txn: number; index: number }
  | { kind: 'tick' | 'step' | 'restart' | 'copy' };

export interface Workload {
  writers: number;
  txns: Txn[];
  timeline: TimelineEvent[];
}

const TIMEZONES = ['UTC', 'Europe/Berlin', 'Asia/Kolkata', 'Asia/Kathmandu', 'Australia/Eucla', 'America/St_Johns', 'Pacific/Chatham', 'Pacific/Kiritimati', 'Etc/GMT+12', 'America/Caracas', 'Africa/Monrovia', 'Asia/Tehran', '<+0330>-03:30'];
const DATESTYLES = ['ISO, MDY', 'ISO, DMY', 'SQL, DMY', 'SQL, MDY', 'German', 'Postgres, MDY', 'Postgres, DMY', 'ISO, YMD'];
const INTERVALSTYLES = ['postgres', 'postgres_verbose', 'sql_standard', 'iso_8601'];

export function randomSettings(r: Rng): SessionSettings {
  return {
    TimeZone: r.pick(TIMEZONES),
    DateStyle: r.pick(DATESTYLES),
    IntervalStyle: r.pick(INTERVALSTYLES),
    bytea_output: r.pick(['hex', 'escape']),
    extra_float_digits: r.int(-15, 3),
  };
}

export function settingsSql(s: SessionSettings): string {
  return `SET TimeZone = '${s.TimeZone}'; SET DateStyle = '${s.DateStyle}'; SET IntervalStyle = '${s.IntervalStyle}'; SET bytea_output = '${s.bytea_output}'; SET extra_float_digits = ${s.extra_float_digits}`;
}

export interface WorkloadOptions {
  allowed: (feature: string) => boolean;
  transactions: number;
  writers?: number;
}

/** One writer's rows of one table: key number → unique-value numbers. */
type Part = Map<number, number[]>;

class Model {
  /** committed[writer][table] */
  committed: Array<Map<string, Part>>;
  constructor(writers: number, tables: TableDef[]) {
    this.committed = Array.from({ length: writers }, () => new Map(tables.map((t) => [t.name, new Map()])));
  }
  clone(w: number): Map<string, Part> {
    return new Map([...this.committed[w]!].map(([t, p]) => [t, new Map([...p].map(([k, u]) => [k, [...u]]))]));
  }
}

/** Open transaction being generated. */
interface Open {
  txn: Txn;
  state: Map<string, Part>;
  /** Items still to generate. */
  remaining: number;
  /** Slots between items (long transactions span several ticks). */
  every: number;
  nextAt: number;
  exclusive: boolean;
}

export function generateWorkload(r: Rng, env: Environment, tables: TableDef[], opts: WorkloadOptions): Workload {
  currentEnv = env;
  const allowed = opts.allowed;
  const W = opts.writers ?? r.int(2, 4);
  const model = new Model(W, tables);
  const txns: Txn[] = [];
  const timeline: TimelineEvent[] = [];
  const open = new Map<number, Open>();
  /** Next key number per writer and table: n ≡ writer (mod W). */
  const nextKey = new Map<string, number>();
  const freshKey = (w: number, t: string) => {
    const k = `${w}\u0000${t}`;
    const n = nextKey.get(k) ?? w;
    nextKey.set(k, n + W);
    return n;
  };
  const uniqueCounter = new Map<string, number>();
  const freshUnique = (t: string, i: number) => {
    const k = `${t}\u0000${i}`;
    const n = uniqueCounter.get(k) ?? 0;
    uniqueCounter.set(k, n + 1);
    return n;
  };
  const everUsed = new Map<string, Set<number>>();
  const used = (w: number, t: string) => {
    const k = `${w}\u0000${t}`;
    if (!everUsed.has(k)) everUsed.set(k, new Set());
    return everUsed.get(k)!;
  };

  let copyAt = r.int(Math.floor(opts.transactions * 0.1), Math.floor(opts.transactions * 0.6));
  let truncatePending = false;
  let started = 0;
  for (let slot = 0; started < opts.transactions || open.size > 0; slot++) {
    // Controls.
    if (r.chance(0.25)) timeline.push({ kind: 'tick' });
    // Steps rarer than ticks: batches then hold several transactions on the same keys.
    if (r.chance(0.12)) timeline.push({ kind: 'step' });
    if (r.chance(0.01)) timeline.push({ kind: 'restart' });
    if (started >= copyAt && copyAt >= 0) {
      timeline.push({ kind: 'copy' });
      copyAt = -1;
    }
    // New transactions.
    if (!truncatePending && allowed('truncate') && started > opts.transactions / 4 && r.chance(0.008)) truncatePending = true;
    if (truncatePending && open.size === 0 && started < opts.transactions) {
      const w = r.int(0, W - 1);
      const txn: Txn = { id: txns.length, writer: w, settings: randomSettings(r), items: [], end: r.chance(0.15) ? 'rollback' : 'commit' };
      txns.push(txn);
      open.set(w, { txn, state: model.clone(w), remaining: 0, every: 1, nextAt: slot + 1, exclusive: true });
      timeline.push({ kind: 'begin', txn: txn.id });
      const victims = tables.filter(() => r.chance(0.5));
      if (!victims.length) victims.push(r.pick(tables));
      const only = victims.some((t) => tables.some((c) => c.parent === t.name)) && r.chance(0.5) ? 'ONLY ' : '';
      txn.items.push({ sql: `TRUNCATE ${only}${victims.map((t) => `public.${qi(t.name)}`).join(', ')}`, tables: victims.map((t) => t.name) });
      timeline.push({ kind: 'item', txn: txn.id, index: 0 });
      // TRUNCATE without ONLY empties the children too.
      const emptied = only ? victims : [...victims, ...tables.filter((c) => c.parent && victims.some((v) => v.name === c.parent))];
      txn.truncated = emptied.map((t) => t.name);
      started++;
      truncatePending = false;
    }
    if (!truncatePending) {
      for (let w = 0; w < W && started < opts.transactions; w++) {
        if (open.has(w) || !r.chance(0.35)) continue;
        const long = r.chance(0.08);
        const txn: Txn = { id: txns.length, writer: w, settings: randomSettings(r), items: [], end: r.chance(0.12) ? 'rollback' : 'commit' };
        txns.push(txn);
        open.set(w, { txn, state: model.clone(w), remaining: long ? r.int(3, 8) : r.int(1, 5), every: long ? r.int(4, 10) : r.int(1, 2), nextAt: slot + 1, exclusive: false });
        timeline.push({ kind: 'begin', txn: txn.id });
        started++;
      }
    }
    // Items of open transactions, and their ends.
    for (const [w, o] of [...open]) {
      if (o.nextAt > slot) continue;
      if (o.remaining > 0) {
        const item = generateItem(r, allowed, tables, o.state, w, freshKey, freshUnique, used);
        if (item) {
          o.txn.items.push(item);
          timeline.push({ kind: 'item', txn: o.txn.id, index: o.txn.items.length - 1 });
        }
        o.remaining--;
        o.nextAt = slot + o.every;
        continue;
      }
      timeline.push({ kind: 'end', txn: o.txn.id });
      if (o.txn.end === 'commit') {
        const truncated = o.txn.truncated;
        if (truncated) {
          for (let x = 0; x < W; x++) for (const t of truncated) model.committed[x]!.set(t, new Map());
        } else model.committed[w] = o.state;
      }
      open.delete(w);
    }
  }
  if (copyAt >= 0) timeline.push({ kind: 'copy' });
  return { writers: W, txns, timeline };
}

// ---------- statements ----------

type FreshKey = (w: number, t: string) => number;
type FreshUnique = (t: string, i: number) => number;

function keyParts(t: TableDef, n: number): number[] {
  const k = t.key.length;
  if (k === 1) return [n];
  if (k === 2) return [Math.floor(n / 3), n % 3];
  return [Math.floor(n / 9), Math.floor(n / 3) % 3, n % 3];
}

function col(t: TableDef, name: string): ColumnDef {
  return t.columns.find((c) => c.name === name)!;
}

function keyLiterals(r: Rng, allowed: (f: string) => boolean, t: TableDef, n: number): string[] {
  const parts = keyParts(t, n);
  return t.key.map((k, i) => col(t, k).type.key!(parts[i]!, allowed('key-spelling') ? r.int(0, 6) : 0));
}

function whereKey(r: Rng, allowed: (f: string) => boolean, t: TableDef, n: number): string {
  return keyLiterals(r, allowed, t, n)
    .map((v, i) => `${qi(t.key[i]!)} = ${v}`)
    .join(' AND ');
}

function uniqueColumns(t: TableDef): ColumnDef[] {
  return t.columns.filter((c) => c.role === 'unique').sort((a, b) => a.uniqueIndex! - b.uniqueIndex!);
}

function dataValue(r: Rng, allowed: (f: string) => boolean, c: ColumnDef, env: Environment): string {
  if (!c.notNull && r.chance(0.15)) return 'NULL';
  if (c.role === 'live') return r.pick(['true', 'false']);
  if (c.role === 'gbase') return String(r.int(-1000, 1000));
  return c.type.gen(r, allowed, env);
}

function writable(t: TableDef): ColumnDef[] {
  return t.columns.filter((c) => c.role !== 'identity' && c.role !== 'generated');
}

/** The environment of the workload being generated (type generators look at the majors). */
let currentEnv: Environment;

function insertSql(r: Rng, allowed: (f: string) => boolean, t: TableDef, rows: Array<{ n: number; u: number[] }>): string {
  const cols = writable(t);
  const uniques = uniqueColumns(t);
  const values = rows.map(({ n, u }) => {
    const keys = keyLiterals(r, allowed, t, n);
    return `(${cols
      .map((c) => {
        if (c.role === 'key') return keys[t.key.indexOf(c.name)]!;
        if (c.role === 'unique') return c.type.key!(u[uniques.indexOf(c)]!, allowed('key-spelling') ? r.int(0, 6) : 0);
        return dataValue(r, allowed, c, currentEnv);
      })
      .join(', ')})`;
  });
  return `INSERT INTO public.${qi(t.name)} (${cols.map((c) => qi(c.name)).join(', ')}) VALUES ${values.join(', ')}`;
}

function target(t: TableDef, tables: TableDef[]): string {
  return `${tables.some((c) => c.parent === t.name) ? 'ONLY ' : ''}public.${qi(t.name)}`;
}

function generateItem(
  r: Rng,
  allowed: (f: string) => boolean,
  tables: TableDef[],
  state: Map<string, Part>,
  w: number,
  freshKey: FreshKey,
  freshUnique: FreshUnique,
  used: (w: number, t: string) => Set<number>,
): Item | null {
  const t = r.pick(tables);
  const part = state.get(t.name)!;
  const present = [...part.keys()];
  const uniques = uniqueColumns(t);
  const q = target(t, tables);
  const newRow = (n: number) => {
    const u = uniques.map((c) => freshUnique(t.name, c.uniqueIndex!));
    part.set(n, u);
    used(w, t.name).add(n);
    return { n, u };
  };
  const data = t.columns.filter((c) => c.role === 'data' || c.role === 'live' || c.role === 'gbase');
  const item = (sql: string): Item => ({ sql, tables: [t.name] });
  const op = r.int(0, 99);
  const some = () => r.pick(present);

  if (present.length === 0 || op < 30) {
    const rows = Array.from({ length: r.chance(0.4) ? r.int(2, 5) : 1 }, () => newRow(freshKey(w, t.name)));
    return item(insertSql(r, allowed, t, rows));
  }
  if (op < 36) {
    // Re-insert a key this writer deleted earlier.
    const gone = [...used(w, t.name)].filter((n) => !part.has(n));
    if (!gone.length) return null;
    return item(insertSql(r, allowed, t, [newRow(r.pick(gone))]));
  }
  if (op < 56) {
    if (!data.length) return null;
    const n = some();
    const sets = Array.from(new Set(Array.from({ length: r.int(1, 3) }, () => r.pick(data))));
    return item(`UPDATE ${q} SET ${sets.map((c) => `${qi(c.name)} = ${dataValue(r, allowed, c, currentEnv)}`).join(', ')} WHERE ${whereKey(r, allowed, t, n)}`);
  }
  if (op < 60 && data.length && present.length >= 2) {
    // One statement, several rows.
    const ns = Array.from(new Set([some(), some(), some()]));
    const c = r.pick(data);
    return item(`UPDATE ${q} SET ${qi(c.name)} = ${dataValue(r, allowed, c, currentEnv)} WHERE ${ns.map((n) => `(${whereKey(r, allowed, t, n)})`).join(' OR ')}`);
  }
  if (op < 64 && uniques.length) {
    const n = some();
    const i = r.int(0, uniques.length - 1);
    const uid = freshUnique(t.name, uniques[i]!.uniqueIndex!);
    part.get(n)![i] = uid;
    return item(`UPDATE ${q} SET ${qi(uniques[i]!.name)} = ${uniques[i]!.type.key!(uid, 0)} WHERE ${whereKey(r, allowed, t, n)}`);
  }
  if (op < 71 && allowed('key-change')) {
    const n = some();
    const m = freshKey(w, t.name);
    const u = part.get(n)!;
    part.delete(n);
    part.set(m, u);
    used(w, t.name).add(m);
    const lits = keyLiterals(r, allowed, t, m);
    return item(`UPDATE ${q} SET ${t.key.map((k, i) => `${qi(k)} = ${lits[i]}`).join(', ')} WHERE ${whereKey(r, allowed, t, n)}`);
  }
  if (op < 74 && allowed('key-change') && present.length >= 2) {
    // Swap two keys through a fresh one, inside one item (three statements).
    const a = some();
    const b = r.pick(present.filter((x) => x !== a));
    const tmp = freshKey(w, t.name);
    used(w, t.name).add(tmp);
    const ua = part.get(a)!;
    part.set(a, part.get(b)!);
    part.set(b, ua);
    const set = (n: number) => keyLiterals(r, allowed, t, n).map((v, i) => `${qi(t.key[i]!)} = ${v}`).join(', ');
    return item([`UPDATE ${q} SET ${set(tmp)} WHERE ${whereKey(r, allowed, t, a)}`, `UPDATE ${q} SET ${set(a)} WHERE ${whereKey(r, allowed, t, b)}`, `UPDATE ${q} SET ${set(b)} WHERE ${whereKey(r, allowed, t, tmp)}`].join('; '));
  }
  if (op < 80 && uniques.length && present.length >= 2 && allowed('unique-swap')) {
    // Swap the unique values of two rows through a fresh value.
    const i = r.int(0, uniques.length - 1);
    const c = uniques[i]!;
    const a = some();
    const b = r.pick(present.filter((x) => x !== a));
    const ua = part.get(a)![i]!;
    const ub = part.get(b)![i]!;
    const tmp = freshUnique(t.name, c.uniqueIndex!);
    part.get(a)![i] = ub;
    part.get(b)![i] = ua;
    const lit = (u: number) => c.type.key!(u, 0);
    return item(
      [
        `UPDATE ${q} SET ${qi(c.name)} = ${lit(tmp)} WHERE ${whereKey(r, allowed, t, a)}`,
        `UPDATE ${q} SET ${qi(c.name)} = ${lit(ua)} WHERE ${whereKey(r, allowed, t, b)}`,
        `UPDATE ${q} SET ${qi(c.name)} = ${lit(ub)} WHERE ${whereKey(r, allowed, t, a)}`,
      ].join('; '),
    );
  }
  if (op < 90) {
    const n = some();
    part.delete(n);
    return item(`DELETE FROM ${q} WHERE ${whereKey(r, allowed, t, n)}`);
  }
  if (op < 95) {
    // Delete and insert the same key again.
    const n = some();
    part.delete(n);
    const del = `DELETE FROM ${q} WHERE ${whereKey(r, allowed, t, n)}`;
    return item(`${del}; ${insertSql(r, allowed, t, [newRow(n)])}`);
  }
  // A savepoint around an insert and an update, rolled back or released.
  const sp = `sp${r.int(0, 1e6)}`;
  const before = new Map([...part].map(([k, u]) => [k, [...u]]));
  const n = freshKey(w, t.name);
  const ins = insertSql(r, allowed, t, [newRow(n)]);
  const upd = data.length ? `; UPDATE ${q} SET ${qi(data[0]!.name)} = ${dataValue(r, allowed, data[0]!, currentEnv)} WHERE ${whereKey(r, allowed, t, some())}` : '';
  if (r.chance(0.5)) {
    state.set(t.name, before);
    return item(`SAVEPOINT ${sp}; ${ins}${upd}; ROLLBACK TO SAVEPOINT ${sp}`);
  }
  return item(`SAVEPOINT ${sp}; ${ins}${upd}; RELEASE SAVEPOINT ${sp}`);
}
