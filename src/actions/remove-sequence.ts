/** remove_sequence: stops carrying a sequence on its queue. */
import type { QualifiedName } from '../kernel/index.js';
import { defineAction, makeAction, type ActionRecord, type ActionSite } from './action.js';
import { objectOf, sequenceName, sequenceParams, type SequenceParams } from './names.js';

export type RemoveSequenceParams = SequenceParams;

export type RemoveSequenceAction = ActionRecord<'remove_sequence', RemoveSequenceParams>;

export function proposeRemoveSequence(a: { root: ActionSite; queue: string; sequence: QualifiedName }): RemoveSequenceAction {
  const object = objectOf(a.sequence);
  return makeAction('remove_sequence', 'delete', a.root, object, { queue: a.queue, object, reason: 'it is carried but no longer selected by the file', params: sequenceParams(a.sequence) });
}

export const removeSequence = defineAction<'remove_sequence', RemoveSequenceParams>({
  kind: 'remove_sequence',
  hint: "check the root's engine with `pgconvey status`",
  databases: (a) => [a.database],
  execute: async (a, ctx) => {
    const s = sequenceName(a.params);
    await ctx.engine.removeSequence(ctx.db(a.database), a.queue!, s.schema, s.name);
  },
});
