/** subscribe: registers a leaf's consumer on its provider and records the subscription on the leaf. */
import { defineAction, makeAction, type ActionRecord, type ActionSite } from './action.js';

export interface SubscribeParams {
  /** The provider's node name. */
  provider: string;
  consumer: string;
  /** The provider's database, where the consumer is registered. */
  providerDatabase: string;
}

export type SubscribeAction = ActionRecord<'subscribe', SubscribeParams>;

export function proposeSubscribe(a: { leaf: ActionSite; queue: string; provider: ActionSite; dependsOn: string[] }): SubscribeAction {
  return makeAction('subscribe', 'create', a.leaf, a.queue, {
    queue: a.queue,
    reason: `node "${a.leaf.node}" is not subscribed to queue "${a.queue}" yet`,
    dependsOn: a.dependsOn,
    params: { provider: a.provider.node, consumer: a.leaf.node, providerDatabase: a.provider.database },
  });
}

export const subscribe = defineAction<'subscribe', SubscribeParams>({
  kind: 'subscribe',
  hint: 'check both engines with `pgconvey status`',
  databases: (a) => [a.database, a.params.providerDatabase],
  execute: async (a, ctx) => {
    await ctx.engine.subscribe(ctx.db(a.params.providerDatabase), ctx.db(a.database), a.queue!, a.params.consumer);
  },
});
