/** The planner's sequence step on a queue's root: carry the sequences the file selects, stop carrying the others. Keyed by `nameKey`. Pure. */
import { proposeCaptureSequence, proposeRemoveSequence } from '../actions/index.js';
import type { EngineQueueInfo, NodeCatalog, SequenceInfo } from '../catalog/model.js';
import type { NodeSpec, QueueSpec } from '../config/index.js';
import { nameKey } from '../kernel/index.js';
import type { PlanBuilder } from './builder.js';
import { selected } from './selection.js';

/** Returns the root's sequences the queue selects. */
export function planSequences(queue: QueueSpec, root: NodeSpec, rootCatalog: NodeCatalog, queueState: EngineQueueInfo | undefined, queueReady: string[], plan: PlanBuilder): SequenceInfo[] {
  const site = { node: root.name, database: root.database };
  const sequences = rootCatalog.sequences.filter((s) => selected(queue.sequences, s));
  const carried = new Map((queueState?.sequences ?? []).map((s) => [nameKey(s), s]));
  for (const s of sequences) {
    if (carried.has(nameKey(s))) continue;
    plan.add(proposeCaptureSequence({ root: site, queue: queue.name, sequence: s, dependsOn: queueReady }));
  }
  const wanted = new Set(sequences.map(nameKey));
  for (const [key, s] of carried) {
    if (wanted.has(key)) continue;
    plan.add(proposeRemoveSequence({ root: site, queue: queue.name, sequence: s }));
  }
  return sequences;
}
