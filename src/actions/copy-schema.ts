/**
 * copy_schema (prepare.schema: copy): creates the selected tables missing on
 * a subscriber (and what they need, or every missing object) from the
 * provider's definitions with pg_dump — run by the executor's schema copy,
 * with the pg_dump found in this process (no path to it is in the plan), in
 * the background beside the actions after it (src/executor/schedule.ts).
 */
import { defineAction, makeAction, type ActionRecord } from './action.js';
import type { TableParams } from './names.js';

export interface CopySchemaParams {
  tables: TableParams[];
  consumer: string;
  mode: 'tables' | 'all';
  /** What the plan's dry run found the copy creates (pg_dump's entry type and name), when it ran one. */
  objects?: Array<{ type: string; name: string }>;
  /** The provider's database, whose definitions are dumped. */
  providerDatabase: string;
}

export type CopySchemaAction = ActionRecord<'copy_schema', CopySchemaParams>;

export function proposeCopySchema(a: {
  node: string;
  database: string;
  queue: string;
  reason: string;
  dependsOn: string[];
  tables: TableParams[];
  mode: 'tables' | 'all';
  objects?: Array<{ type: string; name: string }>;
  providerDatabase: string;
}): CopySchemaAction {
  return makeAction('copy_schema', 'create', { node: a.node, database: a.database }, a.queue, {
    queue: a.queue,
    reason: a.reason,
    dependsOn: a.dependsOn,
    // No path to pg_dump here: nothing executable is ever taken from a plan; apply finds pg_dump itself.
    params: { tables: a.tables, consumer: a.node, mode: a.mode, ...(a.objects ? { objects: a.objects } : {}), providerDatabase: a.providerDatabase },
  });
}

/** The id a schema copy of `node` for `queue` has (the caller's dry runs are keyed by it). */
export function copySchemaId(node: string, queue: string): string {
  return `copy_schema:${node}:${queue}`;
}

export const copySchema = defineAction<'copy_schema', CopySchemaParams>({
  kind: 'copy_schema',
  hint: 'fix the cause on the subscriber or the provider',
  databases: (a) => [a.database, a.params.providerDatabase],
  // Its own connections (pg_dump, the script's transaction on the subscriber): the provider's captures go on meanwhile.
  background: true,
  execute: (a, ctx) =>
    ctx.copySchema({ actionId: a.id, node: a.node, providerDatabase: a.params.providerDatabase, database: a.database, tables: a.params.tables, mode: a.params.mode ?? 'tables' }),
});
