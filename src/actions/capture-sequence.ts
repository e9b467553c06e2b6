/** capture_sequence: carries a sequence on its queue (its value follows to the subscribers at the switchover). */
import type { QualifiedName } from '../kernel/index.js';
import { defineAction, makeAction, type ActionRecord, type ActionSite } from './action.js';
import { objectOf, sequenceName, sequenceParams, type SequenceParams } from './names.js';

export type CaptureSequenceParams = SequenceParams;

export type CaptureSequenceAction = ActionRecord<'capture_sequence', CaptureSequenceParams>;

export function proposeCaptureSequence(a: { root: ActionSite; queue: string; sequence: QualifiedName; dependsOn: string[] }): CaptureSequenceAction {
  const object = objectOf(a.sequence);
  return makeAction('capture_sequence', 'create', a.root, object, { queue: a.queue, object, reason: "it matches the queue's sequences", dependsOn: a.dependsOn, params: sequenceParams(a.sequence) });
}

export const captureSequence = defineAction<'capture_sequence', CaptureSequenceParams>({
  kind: 'capture_sequence',
  hint: "the root's role needs SELECT on the sequence",
  databases: (a) => [a.database],
  execute: async (a, ctx) => {
    const s = sequenceName(a.params);
    await ctx.engine.addSequence(ctx.db(a.database), a.queue!, s.schema, s.name);
  },
});
