/** add_subscriber_table: records a table on a subscriber as `pending`, so its worker copies it and then applies its events. */
import type { QualifiedName } from '../kernel/index.js';
import { defineAction, makeAction, type ActionRecord, type ActionSite } from './action.js';
import { objectOf, tableName, tableParams, type TableParams } from './names.js';

export interface AddSubscriberTableParams extends TableParams {
  consumer: string;
}

export type AddSubscriberTableAction = ActionRecord<'add_subscriber_table', AddSubscriberTableParams>;

export function proposeAddSubscriberTable(a: { leaf: ActionSite; queue: string; table: QualifiedName; reason: string; destructive?: boolean; dependsOn: string[] }): AddSubscriberTableAction {
  const object = objectOf(a.table);
  return makeAction('add_subscriber_table', 'create', a.leaf, object, {
    queue: a.queue,
    object,
    reason: a.reason,
    destructive: a.destructive ?? false,
    dependsOn: a.dependsOn,
    params: { ...tableParams(a.table), consumer: a.leaf.node },
  });
}

export const addSubscriberTable = defineAction<'add_subscriber_table', AddSubscriberTableParams>({
  kind: 'add_subscriber_table',
  hint: "check the subscriber's engine with `pgconvey status`",
  databases: (a) => [a.database],
  groupable: true,
  execute: async (a, ctx) => {
    const t = tableName(a.params);
    await ctx.engine.addSubscriberTable(ctx.db(a.database), a.queue!, a.params.consumer, t.schema, t.name, 'pending');
  },
});
