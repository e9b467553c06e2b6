/** remove_subscriber_table: stops replicating a table to a subscriber (its rows there stay). */
import type { QualifiedName } from '../kernel/index.js';
import { defineAction, makeAction, type ActionRecord, type ActionSite } from './action.js';
import { objectOf, tableName, tableParams, type TableParams } from './names.js';

export interface RemoveSubscriberTableParams extends TableParams {
  consumer: string;
}

export type RemoveSubscriberTableAction = ActionRecord<'remove_subscriber_table', RemoveSubscriberTableParams>;

export function proposeRemoveSubscriberTable(a: { leaf: ActionSite; queue: string; table: QualifiedName }): RemoveSubscriberTableAction {
  const object = objectOf(a.table);
  return makeAction('remove_subscriber_table', 'delete', a.leaf, object, {
    queue: a.queue,
    object,
    reason: 'it is no longer selected by the file: it stops replicating here (its rows stay)',
    destructive: true,
    params: { ...tableParams(a.table), consumer: a.leaf.node },
  });
}

export const removeSubscriberTable = defineAction<'remove_subscriber_table', RemoveSubscriberTableParams>({
  kind: 'remove_subscriber_table',
  hint: "check the subscriber's engine with `pgconvey status`",
  databases: (a) => [a.database],
  execute: async (a, ctx) => {
    const t = tableName(a.params);
    await ctx.engine.removeSubscriberTable(ctx.db(a.database), a.queue!, a.params.consumer, t.schema, t.name);
  },
});
