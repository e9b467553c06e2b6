/**
 * create_branch_queue: makes a branch's own copy of the queue (cascades) on the branch, after its
 * subscription to its provider: the queue starts at the branch's position, takes its provider's ticks
 * (never its own) and the events its worker re-queues, and feeds the branch's own subscribers.
 */
import type { EngineQueueSettings } from '../catalog/model.js';
import { defineAction, makeAction, type ActionRecord, type ActionSite } from './action.js';

export interface CreateBranchQueueParams {
  /** The branch's own consumer name on its provider (its node name). */
  consumer: string;
  /** The provider node the branch follows. */
  provider: string;
  settings: EngineQueueSettings;
}

export type CreateBranchQueueAction = ActionRecord<'create_branch_queue', CreateBranchQueueParams>;

export function proposeCreateBranchQueue(a: { branch: ActionSite; queue: string; provider: string; settings: EngineQueueSettings; dependsOn: string[] }): CreateBranchQueueAction {
  return makeAction('create_branch_queue', 'create', a.branch, a.queue, {
    queue: a.queue,
    reason: `node "${a.branch.node}" is a branch: it keeps a copy of queue "${a.queue}" for its own subscribers`,
    dependsOn: a.dependsOn,
    params: { consumer: a.branch.node, provider: a.provider, settings: a.settings },
  });
}

export const createBranchQueue = defineAction<'create_branch_queue', CreateBranchQueueParams>({
  kind: 'create_branch_queue',
  hint: "check the branch's subscription with `pgconvey status`",
  databases: (a) => [a.database],
  execute: async (a, ctx) => {
    await ctx.engine.createBranchQueue(ctx.db(a.database), a.queue!, a.params.consumer, a.params.provider, a.params.settings);
  },
});
