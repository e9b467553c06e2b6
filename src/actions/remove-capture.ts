/** remove_capture: stops capturing a table on its queue's root (remove_table: its capture triggers go). */
import type { QualifiedName } from '../kernel/index.js';
import { defineAction, makeAction, type ActionRecord, type ActionSite } from './action.js';
import { objectOf, tableName, tableParams, type TableParams } from './names.js';

export type RemoveCaptureParams = TableParams;

export type RemoveCaptureAction = ActionRecord<'remove_capture', RemoveCaptureParams>;

export function proposeRemoveCapture(a: { root: ActionSite; queue: string; table: QualifiedName }): RemoveCaptureAction {
  const object = objectOf(a.table);
  return makeAction('remove_capture', 'delete', a.root, object, { queue: a.queue, object, reason: 'it is captured but no longer selected by the file', destructive: true, params: tableParams(a.table) });
}

export const removeCapture = defineAction<'remove_capture', RemoveCaptureParams>({
  kind: 'remove_capture',
  hint: "the root's role must own the table (its capture triggers are dropped)",
  databases: (a) => [a.database],
  execute: async (a, ctx) => {
    const t = tableName(a.params);
    await ctx.engine.removeTable(ctx.db(a.database), a.queue!, t.schema, t.name);
  },
});
