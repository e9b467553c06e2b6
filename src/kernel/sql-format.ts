/**
 * Building SQL text: identifiers are quoted exactly, always — `"name"` with
 * inner quotes doubled — so no keyword list (pg-format's is Redshift's, and
 * PostgreSQL's grows with every major) can leave a reserved word such as
 * `window` or `current_role` bare. Literals and plain strings are delegated
 * to pg-format. Values that reach a statement at run time go as parameters;
 * this is for names and for the few literals inlined into cursor text.
 */
import pgFormat from 'pg-format';

/** `name` as a quoted SQL identifier, exactly: `"name"`, `"a""b"`. */
export function quoteIdent(name: string): string {
  if (name.includes('\u0000')) throw new Error('an SQL identifier cannot contain a NUL character');
  return `"${name.replace(/"/g, '""')}"`;
}

/** `schema.name`, both parts quoted. */
export function quoteQualified(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

/**
 * printf-style SQL text: `%I` an identifier (always quoted; an array becomes a
 * comma-separated list), `%L` a literal and `%s` a string (as pg-format does
 * them), `%%` a percent sign.
 */
export function sqlFormat(fmt: string, ...args: unknown[]): string {
  let next = 0;
  return fmt.replace(/%([ILs%])/g, (_match, kind: string) => {
    if (kind === '%') return '%';
    if (next >= args.length) throw new Error(`sqlFormat: too few arguments for "${fmt}"`);
    const arg = args[next++];
    if (kind === 'I') {
      const names = Array.isArray(arg) ? arg : [arg];
      return names.map((n) => quoteIdent(String(n))).join(',');
    }
    return pgFormat(`%${kind}`, arg);
  });
}
