/** remove_consumer: unregisters a consumer from its queue's root — a stale copy pin, or the consumer of a node gone from the file. */
import { defineAction, makeAction, type ActionRecord, type ActionSite } from './action.js';

export interface RemoveConsumerParams {
  consumer: string;
}

export type RemoveConsumerAction = ActionRecord<'remove_consumer', RemoveConsumerParams>;

export function proposeRemoveConsumer(a: { root: ActionSite; queue: string; consumer: string; reason: string; destructive: boolean }): RemoveConsumerAction {
  return makeAction('remove_consumer', 'delete', a.root, a.consumer, { queue: a.queue, object: a.consumer, reason: a.reason, ...(a.destructive ? { destructive: true } : {}), params: { consumer: a.consumer } });
}

export const removeConsumer = defineAction<'remove_consumer', RemoveConsumerParams>({
  kind: 'remove_consumer',
  hint: "check the root's engine with `pgconvey status`",
  databases: (a) => [a.database],
  execute: async (a, ctx) => {
    await ctx.engine.unregisterConsumer(ctx.db(a.database), a.queue!, a.params.consumer);
  },
});
