/**
 * The planner's schema copy step (prepare.schema: copy): one action creating
 * the tables missing on a subscriber from the provider's definitions with
 * pg_dump, which must be at least as new as the provider; with the problems
 * the caller's dry run found as checks. Pure.
 */
import { copySchemaId, proposeCopySchema, tableParams } from '../actions/index.js';
import type { NodeCatalog, TableInfo } from '../catalog/model.js';
import type { NodeSpec, QueueSpec } from '../config/index.js';
import { displayName } from '../kernel/index.js';
import type { PlanBuilder } from './builder.js';
import type { PlanInput } from './input.js';

/** Returns the copy's id, or null when it cannot be planned (and says why). */
export function planSchemaCopy(
  input: PlanInput,
  queue: QueueSpec,
  leaf: NodeSpec,
  providerDatabase: string,
  root: NodeCatalog,
  absent: TableInfo[],
  missingOwners: string[],
  roleIds: string[],
  plan: PlanBuilder,
): string | null {
  const check = plan.check;
  const needed = Math.floor(root.serverVersionNum / 10000);
  const pgDump = input.tools?.pgDump ?? null;
  const names = absent.map((t) => displayName(t));
  if (!pgDump || pgDump.major < needed) {
    check(
      'error',
      pgDump ? 'pg_dump_too_old' : 'pg_dump_not_found',
      `prepare.schema: copy needs pg_dump of PostgreSQL ${needed} or newer to create ${names.join(', ')} on node "${leaf.name}"; ${pgDump ? `found ${pgDump.version} at ${pgDump.path}` : 'none was found'}`,
      `install the PostgreSQL ${needed}+ client tools (e.g. apt-get install postgresql-client-${Math.max(needed, 15)}), or point PGCONVEY_PG_DUMP at a pg_dump`,
      'prepare.schema',
    );
    return null;
  }
  const owners = missingOwners.filter((o) => absent.some((t) => t.owner === o));
  if (owners.length && input.state.prepare.roles !== 'copy') {
    check('error', 'roles_missing_for_schema_copy', `the tables to create on node "${leaf.name}" are owned by role(s) ${owners.join(', ')}, which do not exist there`, 'create the roles there, or set prepare.roles: copy', 'prepare.schema');
    return null;
  }
  const findings = input.schemaCopies?.[copySchemaId(leaf.name, queue.name)];
  for (const p of findings?.problems ?? []) check('error', p.code, p.message, p.hint, 'prepare.schema');
  const objects = findings ? `${input.state.prepare.schemaObjects === 'all' ? ', with every other object missing here' : ' and what they need'}: ${countByType(findings.objects)}` : '';
  return plan.add(
    proposeCopySchema({
      node: leaf.name,
      database: leaf.database,
      queue: queue.name,
      reason: `table(s) ${names.join(', ')} do not exist here; pg_dump ${pgDump.version} creates them from the provider's definitions${objects}`,
      dependsOn: roleIds,
      tables: absent.map((t) => tableParams(t)),
      mode: input.state.prepare.schemaObjects,
      ...(findings ? { objects: findings.objects } : {}),
      providerDatabase,
    }),
  );
}

/** `3 table, 2 sequence…` in the order first met. */
function countByType(objects: ReadonlyArray<{ type: string }>): string {
  const counts = new Map<string, number>();
  for (const o of objects) counts.set(o.type, (counts.get(o.type) ?? 0) + 1);
  return counts.size ? [...counts].map(([t, n]) => `${n} ${t.toLowerCase()}`).join(', ') : 'nothing else';
}
