/**
 * The entries of a schema copy that its plan-time dry run tries, when the
 * script creates many objects of the same shape (schema per tenant: the same
 * tables in each new schema). Inside a schema the script itself creates,
 * nothing on the subscriber can collide with an entry (the schema is new), so
 * an entry whose SQL equals another's once the names it creates are blanked
 * out (its schema, the words of its tag) fails or succeeds as that one does:
 * the dry run tries the first entry of each shape, with every entry about the
 * same object (a representative table's constraints, indexes, defaults, ACLs)
 * so that they find what they need. Everything else — entries outside such
 * new schemas (in public, or any schema that exists there), entries of no
 * schema (schemas, extensions…) — is always tried. Pure; the caller tries the
 * whole script when this reduced one fails anywhere, so a failure is always
 * reported as the full dry run reports it.
 */
import type { ScriptEntry } from './schema-toc.js';

/**
 * The shape of an entry: its SQL with the names it creates blanked out — its schema by one placeholder,
 * each word of its tag by its own — wherever one stands as a whole identifier (not inside a longer one).
 */
export function entryShape(e: ScriptEntry): string {
  const names: Array<[string, string]> = [];
  if (e.entry.schema) names.push([e.entry.schema, '\u0001\u0002']);
  e.entry.tag.split(/[ .]/).filter(Boolean).forEach((w, i) => names.push([w, `\u0001${'\u0003'.repeat(i + 1)}`]));
  // Longest first: a name inside a longer one (as a whole identifier) is blanked as part of that one.
  names.sort((a, b) => b[0].length - a[0].length);
  let sql = `${e.entry.type}\u0000${e.sql}`;
  for (const [name, mark] of names) sql = sql.replace(new RegExp(`(?<![A-Za-z0-9_$\u0080-\uffff])${escape(name)}(?![A-Za-z0-9_$\u0080-\uffff])`, 'g'), mark);
  return sql;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** What object an entry is about (a constraint, default or ACL about its table): its schema and first name. */
function subjectOf(e: ScriptEntry): string {
  const words = e.entry.tag.split(' ');
  const name = e.entry.type === 'ACL' || e.entry.type === 'COMMENT' || e.entry.type === 'SECURITY LABEL' ? words[words.length - 1]!.split('.')[0]! : words[0]!;
  return `${e.entry.schema}\u0000${name}`;
}

/** The entries to try, in script order (all of them when no schema is new). */
export function representativeEntries(entries: readonly ScriptEntry[]): ScriptEntry[] {
  const newSchemas = new Set(entries.filter((e) => e.entry.type === 'SCHEMA').map((e) => e.entry.tag));
  const dedupable = (e: ScriptEntry) => e.entry.schema !== null && newSchemas.has(e.entry.schema);
  const shapes = new Set<string>();
  const subjects = new Set<string>();
  for (const e of entries) {
    if (!dedupable(e)) continue;
    const shape = entryShape(e);
    if (shapes.has(shape)) continue;
    shapes.add(shape);
    subjects.add(subjectOf(e));
  }
  return entries.filter((e) => !dedupable(e) || subjects.has(subjectOf(e)));
}
