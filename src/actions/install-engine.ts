/** install_engine: installs the engine (the pgconvey schema) in a database that has none. */
import { databaseSite, defineAction, makeAction, type ActionRecord } from './action.js';

export interface InstallEngineParams {
  version: number;
}

export type InstallEngineAction = ActionRecord<'install_engine', InstallEngineParams>;

export function proposeInstallEngine(a: { database: string; version: number }): InstallEngineAction {
  return makeAction('install_engine', 'create', databaseSite(a.database), null, { reason: `the engine is not installed in database "${a.database}"`, params: { version: a.version } });
}

export const installEngine = defineAction<'install_engine', InstallEngineParams>({
  kind: 'install_engine',
  hint: 'the role needs CREATE on the database (see docs/security.md)',
  databases: (a) => [a.database],
  execute: async (a, ctx) => {
    await ctx.engine.installEngine(ctx.db(a.database));
  },
});
