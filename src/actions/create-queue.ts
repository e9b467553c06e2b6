/** create_queue: creates a queue on its root with the settings the file asks for (carried here, not re-read from the file). */
import type { EngineQueueSettings } from '../catalog/model.js';
import { defineAction, makeAction, type ActionRecord, type ActionSite } from './action.js';

export interface CreateQueueParams {
  settings: EngineQueueSettings;
}

export type CreateQueueAction = ActionRecord<'create_queue', CreateQueueParams>;

export function proposeCreateQueue(a: { root: ActionSite; queue: string; settings: EngineQueueSettings; dependsOn: string[] }): CreateQueueAction {
  return makeAction('create_queue', 'create', a.root, a.queue, { queue: a.queue, reason: `queue "${a.queue}" does not exist on its root`, dependsOn: a.dependsOn, params: { settings: a.settings } });
}

export const createQueue = defineAction<'create_queue', CreateQueueParams>({
  kind: 'create_queue',
  hint: "check the root's engine with `pgconvey status`",
  databases: (a) => [a.database],
  execute: async (a, ctx) => {
    await ctx.engine.createQueue(ctx.db(a.database), a.queue!, a.params.settings);
  },
});
