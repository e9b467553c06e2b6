/**
 * The exactness test's own row-by-row comparison, independent of pgconvey:
 * both sides read under identical pinned session settings, every column as
 * its type's text output except floats (their float4send / float8send bits,
 * so -0, NaN and every digit count), rows matched by the text of their key
 * columns and reported in key order, with the first differing rows shown.
 */
import type pg from 'pg';

export interface ColumnInfo {
  name: string;
  /** format_type of the column. */
  type: string;
}

export interface RowDiff {
  key: string;
  provider: string[] | null;
  subscriber: string[] | null;
}

export interface TableComparison {
  table: string;
  providerRows: number;
  subscriberRows: number;
  /** Differing rows in key order (at most `limit`). */
  diffs: RowDiff[];
  /** How many keys differ in all. */
  differing: number;
  columns: string[];
  /** Columns the two sides do not share (name and type), if any. */
  columnMismatch?: string;
}

export const qi = (name: string): string => `"${name.replace(/"/g, '""')}"`;

/** Pinned settings for reading: the same on both sides, whatever the server defaults are. */
async function pin(c: pg.Client, floatDigits: number): Promise<void> {
  await c.query(
    `SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET TimeZone = 'UTC'; SET extra_float_digits = ${floatDigits}; SET bytea_output = 'hex'; SET lc_monetary = 'C'; SET xmloption = 'content'`,
  );
}

async function columnsOf(c: pg.Client, table: string): Promise<ColumnInfo[]> {
  const { rows } = await c.query<ColumnInfo>(
    `SELECT a.attname AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type
       FROM pg_catalog.pg_attribute a WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [`public.${qi(table)}`],
  );
  return rows;
}

function selectList(columns: ColumnInfo[]): string {
  return columns
    .map((c) => {
      if (c.type === 'real') return `pg_catalog.encode(pg_catalog.float4send(${qi(c.name)}), 'hex')`;
      if (c.type === 'double precision') return `pg_catalog.encode(pg_catalog.float8send(${qi(c.name)}), 'hex')`;
      return `${qi(c.name)}::text`;
    })
    .join(', ');
}

async function readRows(c: pg.Client, table: string, columns: ColumnInfo[], key: string[]): Promise<Map<string, string[]>> {
  const keyIdx = key.map((k) => columns.findIndex((c) => c.name === k));
  const { rows } = await c.query<string[]>({ text: `SELECT ${selectList(columns)} FROM ONLY public.${qi(table)}`, rowMode: 'array' });
  const out = new Map<string, string[]>();
  for (const r of rows) {
    let k = JSON.stringify(keyIdx.map((i) => r[i]));
    // Two rows with one key (a key the subscriber does not enforce): keep both, visibly.
    while (out.has(k)) k += ' (again)';
    out.set(k, r);
  }
  return out;
}

/** Majors of both sides decide extra_float_digits: shortest-exact from PG 12, else the classic 15 digits on both. */
export async function floatDigitsFor(a: pg.Client, b: pg.Client): Promise<number> {
  const v = await Promise.all([a, b].map(async (c) => Number((await c.query("SELECT current_setting('server_version_num') AS v")).rows[0].v)));
  return Math.min(...v) >= 120000 ? 3 : 0;
}

/** Compares one table (in schema public) on both sides; key columns decide which rows match. */
export async function compareTable(provider: pg.Client, subscriber: pg.Client, table: string, key: string[], limit = 5): Promise<TableComparison> {
  const digits = await floatDigitsFor(provider, subscriber);
  await Promise.all([pin(provider, digits), pin(subscriber, digits)]);
  const [pc, sc] = await Promise.all([columnsOf(provider, table), columnsOf(subscriber, table)]);
  const sig = (cs: ColumnInfo[]) => cs.map((c) => `${c.name} ${c.type}`).join(', ');
  const result: TableComparison = { table, providerRows: 0, subscriberRows: 0, diffs: [], differing: 0, columns: pc.map((c) => c.name) };
  if (sig(pc) !== sig(sc)) {
    result.columnMismatch = `provider (${sig(pc)}) vs subscriber (${sig(sc)})`;
    result.differing = 1;
    return result;
  }
  const [a, b] = await Promise.all([readRows(provider, table, pc, key), readRows(subscriber, table, pc, key)]);
  result.providerRows = a.size;
  result.subscriberRows = b.size;
  const keys = [...new Set([...a.keys(), ...b.keys()])].sort();
  for (const k of keys) {
    const pa = a.get(k) ?? null;
    const sb = b.get(k) ?? null;
    if (pa && sb && pa.length === sb.length && pa.every((v, i) => v === sb[i])) continue;
    result.differing++;
    if (result.diffs.length < limit) result.diffs.push({ key: k, provider: pa, subscriber: sb });
  }
  return result;
}

/** A readable account of a comparison's differences. */
export function describeComparison(c: TableComparison, maxValue = 200): string {
  if (c.columnMismatch) return `table ${c.table}: columns differ: ${c.columnMismatch}`;
  const cut = (v: string | null) => (v === null ? 'NULL' : v.length > maxValue ? `${JSON.stringify(v.slice(0, maxValue))}… (${v.length} chars)` : JSON.stringify(v));
  const lines = [`table ${c.table}: ${c.differing} row(s) differ (provider ${c.providerRows} rows, subscriber ${c.subscriberRows})`];
  for (const d of c.diffs) {
    if (!d.subscriber) lines.push(`  key ${d.key}: missing on the subscriber`);
    else if (!d.provider) lines.push(`  key ${d.key}: extra on the subscriber: ${d.subscriber.map(cut).join(', ')}`);
    else {
      const cols = c.columns.map((name, i) => [name, d.provider![i] ?? null, d.subscriber![i] ?? null] as const).filter(([, p, s]) => p !== s);
      lines.push(`  key ${d.key}: ${cols.map(([n, p, s]) => `${n}: provider ${cut(p)} ≠ subscriber ${cut(s)}`).join('; ')}`);
    }
  }
  return lines.join('\n');
}
