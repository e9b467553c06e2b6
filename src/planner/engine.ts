/** The planner's engine step: install or upgrade the engine in a node's database when needed (and say when it cannot). Pure. */
import { proposeInstallEngine, proposeUpgradeEngine } from '../actions/index.js';
import type { NodeSpec } from '../config/index.js';
import type { PlanBuilder } from './builder.js';
import type { PlanInput } from './input.js';

/** Returns the id of the engine action of the node's database, if one is needed. */
export function planEngine(input: PlanInput, node: NodeSpec, plan: PlanBuilder): string | null {
  const catalog = input.catalogs[node.database]!;
  const installed = catalog.engine;
  if (installed === null) {
    if (!catalog.privileges.canCreateSchema) {
      plan.check('error', 'cannot_install_engine', `role "${catalog.privileges.user}" may not create the pgconvey schema in database "${node.database}"`, `GRANT CREATE ON DATABASE ${catalog.database} TO ${catalog.privileges.user};`);
    }
    return plan.add(proposeInstallEngine({ database: node.database, version: input.engineVersion }));
  }
  if (installed.version > input.engineVersion) {
    plan.check('error', 'engine_too_new', `the engine in database "${node.database}" is version ${installed.version}, newer than this pgconvey (${input.engineVersion})`, 'use a pgconvey at least as new as the one that installed it; pgconvey never downgrades an engine');
    return null;
  }
  const otherContent = input.engineContent !== undefined && installed.content !== input.engineContent;
  if (installed.version < input.engineVersion || otherContent) {
    const what = (version: number, content: string | null) => `version ${version} (content ${content === null ? 'not recorded' : content.slice(0, 12)})`;
    return plan.add(
      proposeUpgradeEngine({
        database: node.database,
        reason: `the engine in database "${node.database}" is ${what(installed.version, installed.content)}, this pgconvey installs ${what(input.engineVersion, input.engineContent ?? null)}`,
        params: { from: installed.version, to: input.engineVersion, fromContent: installed.content, toContent: input.engineContent ?? null },
      }),
    );
  }
  return null;
}
