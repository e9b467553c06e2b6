/** The planner's roles step (prepare.roles: copy): the provider's roles missing on a subscriber's server, and the memberships it lacks. Pure. */
import { proposeCreateRole, proposeGrantRole } from '../actions/index.js';
import type { NodeCatalog } from '../catalog/model.js';
import type { NodeSpec, QueueSpec } from '../config/index.js';
import type { PlanBuilder } from './builder.js';

/** Returns the ids of the role actions. */
export function planRoles(queue: QueueSpec, leaf: NodeSpec, providerDatabase: string, root: NodeCatalog, sub: NodeCatalog, plan: PlanBuilder): string[] {
  const ids: string[] = [];
  const created: Array<{ name: string; id: string }> = [];
  for (const role of root.roles) {
    if (sub.roles.some((r) => r.name === role.name)) continue;
    const action = proposeCreateRole({ database: leaf.database, queue: queue.name, role, providerDatabase });
    created.push({ name: role.name, id: action.id });
    ids.push(plan.add(action));
  }
  for (const role of root.roles) {
    const there = sub.roles.find((r) => r.name === role.name);
    for (const parent of role.memberOf) {
      if (there?.memberOf.includes(parent)) continue;
      const deps = [role.name, parent].flatMap((n) => created.filter((c) => c.name === n).map((c) => c.id));
      ids.push(plan.add(proposeGrantRole({ database: leaf.database, queue: queue.name, member: role.name, parent, dependsOn: deps })));
    }
  }
  const withoutPassword = created.map((c) => c.name).filter((n) => root.roles.find((r) => r.name === n)!.canLogin);
  if (withoutPassword.length && !root.privileges.superuser) {
    plan.check('warning', 'role_passwords_not_copied', `login role(s) ${withoutPassword.join(', ')} will be created on node "${leaf.name}" without a password: only a superuser may read password hashes on the provider`, 'connect to the provider as a superuser to copy them, or set them afterwards with ALTER ROLE … PASSWORD', `prepare.roles`);
  }
  return ids;
}
