/**
 * A table's or sequence's name in action parameters: the exact schema and
 * name as two fields (`schema` + `table`, or `schema` + `sequence`, the plan
 * JSON's fields since version 1), converted to and from `QualifiedName` only
 * here; the action's `object` and id show it with `displayName`. Pure.
 */
import { displayName, qualifiedName, type QualifiedName } from '../kernel/index.js';

export interface TableParams {
  schema: string;
  table: string;
}

export interface SequenceParams {
  schema: string;
  sequence: string;
}

export function tableParams(n: QualifiedName): TableParams {
  return { schema: n.schema, table: n.name };
}

export function tableName(p: TableParams): QualifiedName {
  return qualifiedName(p.schema, p.table);
}

export function sequenceParams(n: QualifiedName): SequenceParams {
  return { schema: n.schema, sequence: n.name };
}

export function sequenceName(p: SequenceParams): QualifiedName {
  return qualifiedName(p.schema, p.sequence);
}

/** The object (and id subject) of an action about a table or sequence. */
export function objectOf(n: QualifiedName): string {
  return displayName(n);
}
