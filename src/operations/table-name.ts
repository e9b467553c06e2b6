/**
 * Table names given on the command line (compare, resync): `schema.table`,
 * or `table` meaning public, quoted parts as in SQL; never a pattern.
 */
import { isNameProblem, parseNamePattern } from '../config/index.js';
import { PgconveyError, type QualifiedName } from '../kernel/index.js';

export class TableNameError extends PgconveyError {}

export function parseTableName(text: string): QualifiedName {
  let parsed = parseNamePattern(text);
  if (isNameProblem(parsed) && parsed.code === 'unqualified_name') parsed = parseNamePattern(`public.${text}`);
  if (isNameProblem(parsed)) throw new TableNameError('invalid_name', parsed.message, parsed.hint);
  if (!parsed.exact) throw new TableNameError('invalid_name', `"${text}" is a pattern, not a table name`, 'name each table (schema.table, or table for public)');
  return parsed.exact;
}
