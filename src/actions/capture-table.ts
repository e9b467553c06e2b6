/** capture_table: captures a table on its queue's root (add_table: its capture triggers, key and columns), again when they changed; many at once with add_tables. */
import type { QualifiedName } from '../kernel/index.js';
import { defineAction, makeAction, type ActionRecord, type ActionSite, type Change } from './action.js';
import { objectOf, tableName, tableParams, type TableParams } from './names.js';

export interface CaptureTableParams extends TableParams {
  keyColumns: string[];
}

export type CaptureTableAction = ActionRecord<'capture_table', CaptureTableParams>;

export function proposeCaptureTable(a: { root: ActionSite; queue: string; table: QualifiedName; keyColumns: string[]; change: Change; reason: string; dependsOn: string[] }): CaptureTableAction {
  const object = objectOf(a.table);
  return makeAction('capture_table', a.change, a.root, object, { queue: a.queue, object, reason: a.reason, dependsOn: a.dependsOn, params: { ...tableParams(a.table), keyColumns: a.keyColumns } });
}

export const captureTable = defineAction<'capture_table', CaptureTableParams>({
  kind: 'capture_table',
  hint: "the root's role must own the table (capture creates triggers on it), see docs/security.md",
  databases: (a) => [a.database],
  groupable: true,
  execute: async (a, ctx) => {
    const t = tableName(a.params);
    await ctx.engine.addTable(ctx.db(a.database), a.queue!, t.schema, t.name, a.params.keyColumns);
  },
  // One pgconvey.add_tables per queue's consecutive tables.
  executeBatch: async (actions, ctx) => {
    for (let i = 0; i < actions.length; ) {
      const queue = actions[i]!.queue!;
      let j = i;
      while (j < actions.length && actions[j]!.queue === queue) j++;
      const tables = actions.slice(i, j).map((a) => {
        const t = tableName(a.params);
        return { schema: t.schema, table: t.name, keyColumns: a.params.keyColumns };
      });
      await ctx.engine.addTables(ctx.db(actions[i]!.database), queue, tables);
      i = j;
    }
  },
});
