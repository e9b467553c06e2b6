/**
 * Feature tags of the exactness generator, and which of them are excluded
 * for a run: EXACTNESS_EXCLUDE is a comma list of tags, or `known` for every
 * tag of a defect known in today's engine (issue 10), e.g.
 * `EXACTNESS_EXCLUDE=known` or `EXACTNESS_EXCLUDE=json-null,identity`.
 */

export const FEATURES: Record<string, string> = {
  'session-key': 'keys (and unique columns) of timestamptz, bytea or money, written from sessions with different TimeZone / bytea_output',
  'key-spelling': 'the same key value written in different spellings (numeric 1.5 / 1.50, uuid case, timestamptz offsets)',
  identity: 'GENERATED ALWAYS / BY DEFAULT AS IDENTITY columns',
  generated: 'stored generated columns',
  'partial-unique': 'partial unique indexes (WHERE live), swapped inside a transaction',
  'expression-unique': 'unique indexes on expressions (lower(u), u + 1), swapped inside a transaction',
  exclude: 'EXCLUDE USING btree (u WITH =) constraints, swapped inside a transaction',
  'unique-swap': 'values of a plain unique index swapped between two rows inside one transaction',
  'json-whitespace': 'json values with whitespace before or after the value (\'  [1, 2 ]  \')',
  'json-null': "JSON null ('null') as a json/jsonb value",
  hstore: 'the hstore extension type (has a cast to json)',
  'array-bounds': "arrays with a lower bound other than 1 ('[0:2]={…}')",
  'reserved-words': 'reserved words as column names (window, collation, current_role …)',
  inheritance: 'a captured parent table with a captured child (INHERITS), written with ONLY',
  truncate: 'TRUNCATE of one or several tables',
  'numeric-infinity': "numeric 'Infinity' (PG 14+ on both)",
  'key-change': 'UPDATEs of key columns (including swaps of two keys inside one transaction)',
  collation: 'text keys with a non-default collation',
};

/** Tags of defects reproduced in today's engine (issue 10 findings 1–13). */
export const KNOWN_BROKEN = ['session-key', 'identity', 'partial-unique', 'expression-unique', 'exclude', 'json-null', 'json-whitespace', 'hstore', 'array-bounds', 'reserved-words', 'inheritance'];

export function parseExcluded(text: string | undefined): Set<string> {
  const out = new Set<string>();
  for (const part of (text ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    if (part === 'known') KNOWN_BROKEN.forEach((f) => out.add(f));
    else if (part in FEATURES) out.add(part);
    else throw new Error(`EXACTNESS_EXCLUDE: unknown feature "${part}"; known features: known, ${Object.keys(FEATURES).join(', ')}`);
  }
  return out;
}
