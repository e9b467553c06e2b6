/**
 * change_provider: moves a subscribed node (a leaf or a branch) of a cascade to the provider the file
 * names, without a copy (engine/change-provider.ts): its consumer is registered on the new provider at
 * the node's completed tick, a branch's queue follows, and its consumer, watermark and copy pins on the
 * old provider go. Needs the node's worker stopped. Tick ids are the same across the cascade, so no
 * batch is lost or applied twice.
 */
import { defineAction, makeAction, type ActionRecord, type ActionSite } from './action.js';

export interface ChangeProviderParams {
  /** The node's consumer name (its node name). */
  consumer: string;
  /** The provider it reads from now (node and database), or null when it is registered on none the file names. */
  from: string | null;
  fromDatabase: string | null;
  /** The provider the file names. */
  to: string;
  toDatabase: string;
  /** The node's completed tick when planned (for people: apply moves it at its position then). */
  tick: string;
}

export type ChangeProviderAction = ActionRecord<'change_provider', ChangeProviderParams>;

export function proposeChangeProvider(a: { node: ActionSite; queue: string; from: ActionSite | null; to: ActionSite; tick: string; dependsOn?: string[] }): ChangeProviderAction {
  const from = a.from ? `from "${a.from.node}" ` : '';
  return makeAction('change_provider', 'update', a.node, a.queue, {
    queue: a.queue,
    object: a.to.node,
    reason:
      `the file names "${a.to.node}" as the provider of node "${a.node.node}": it moves ${from}to "${a.to.node}" without a copy, continuing at its own tick (${a.tick} now) ` +
      `— registered on "${a.to.node}" there${a.from ? `, then unregistered from "${a.from.node}"` : ''}; its worker must be stopped`,
    dependsOn: a.dependsOn ?? [],
    params: { consumer: a.node.node, from: a.from?.node ?? null, fromDatabase: a.from?.database ?? null, to: a.to.node, toDatabase: a.to.database, tick: a.tick },
  });
}

export const changeProvider = defineAction<'change_provider', ChangeProviderParams>({
  kind: 'change_provider',
  hint: 'stop `pgconvey run` for the node first; `pgconvey status` shows both providers',
  databases: (a) => [a.database, a.params.toDatabase, ...(a.params.fromDatabase ? [a.params.fromDatabase] : [])],
  execute: async (a, ctx) => {
    const from = a.params.fromDatabase ? ctx.db(a.params.fromDatabase) : null;
    await ctx.engine.changeProvider(from, ctx.db(a.params.toDatabase), ctx.db(a.database), a.queue!, a.params.consumer, a.params.to);
  },
});
