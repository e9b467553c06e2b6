/** upgrade_engine: brings an installed engine to this pgconvey's version and content (its migrations, then its functions). */
import { databaseSite, defineAction, makeAction, type ActionRecord } from './action.js';

export interface UpgradeEngineParams {
  from: number;
  to: number;
  fromContent: string | null;
  toContent: string | null;
}

export type UpgradeEngineAction = ActionRecord<'upgrade_engine', UpgradeEngineParams>;

export function proposeUpgradeEngine(a: { database: string; reason: string; params: UpgradeEngineParams }): UpgradeEngineAction {
  return makeAction('upgrade_engine', 'update', databaseSite(a.database), null, { reason: a.reason, params: a.params });
}

export const upgradeEngine = defineAction<'upgrade_engine', UpgradeEngineParams>({
  kind: 'upgrade_engine',
  hint: 'the role needs to own the pgconvey schema, or to be a superuser (see docs/security.md)',
  databases: (a) => [a.database],
  execute: async (a, ctx) => {
    await ctx.engine.installEngine(ctx.db(a.database));
  },
});
