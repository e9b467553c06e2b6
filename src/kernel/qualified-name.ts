/**
 * A table's or sequence's name as data: `{ schema, name }`, exactly as the
 * catalog has them (case and every character kept). Names travel as this
 * value from the config to the SQL; nothing joins them into a string to split
 * it again. `displayName` is for people and for ids (a part is quoted when it
 * is not a plain lower-case identifier, so `"a.b".c` and `a."b.c"` differ);
 * `nameKey` is the unambiguous key for maps and sets. Pure.
 */

export interface QualifiedName {
  readonly schema: string;
  readonly name: string;
}

export function qualifiedName(schema: string, name: string): QualifiedName {
  return { schema, name };
}

const PLAIN = /^[a-z_][a-z0-9_$]*$/;

/** One part for people: as is when plain, else double-quoted with inner quotes doubled. */
export function displayPart(part: string): string {
  return PLAIN.test(part) ? part : `"${part.replace(/"/g, '""')}"`;
}

/** `schema.name` for people, messages and action ids: unambiguous, and unchanged for plain names (`public.orders`). */
export function displayName(n: QualifiedName): string {
  return `${displayPart(n.schema)}.${displayPart(n.name)}`;
}

/** A key for Map/Set that no two different names share (NUL cannot occur in an identifier). */
export function nameKey(n: QualifiedName): string {
  return `${n.schema}\u0000${n.name}`;
}

export function sameName(a: QualifiedName, b: QualifiedName): boolean {
  return a.schema === b.schema && a.name === b.name;
}

/** Orders names by schema, then name (code-point order, stable across locales). */
export function compareNames(a: QualifiedName, b: QualifiedName): number {
  return a.schema < b.schema ? -1 : a.schema > b.schema ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
