/** The planner's queue step: create a queue on its root, or configure it when its settings differ from the file. Pure. */
import { proposeConfigureQueue, proposeCreateQueue } from '../actions/index.js';
import type { EngineQueueInfo, EngineQueueSettings } from '../catalog/model.js';
import type { NodeSpec, QueueSpec } from '../config/index.js';
import type { PlanBuilder } from './builder.js';

/** The queue settings the file asks for, in the engine's terms. */
export function queueSettings(queue: QueueSpec): EngineQueueSettings {
  const d = queue.daemons;
  return {
    tickerMaxCount: d.ticker.maxEvents,
    tickerMaxLagMs: d.ticker.maxLagMs,
    tickerIdlePeriodMs: d.ticker.idlePeriodMs,
    tickerMinIntervalMs: d.ticker.minIntervalMs,
    rotationTxids: d.maintenance.rotationTransactions,
    tickRetentionMs: d.maintenance.tickRetentionMs,
  };
}

/** Returns the ids the queue's tables and consumers wait for: the root's engine action and create_queue, if any. */
export function planQueue(queue: QueueSpec, root: NodeSpec, queueState: EngineQueueInfo | undefined, rootEngine: string | null, plan: PlanBuilder): string[] {
  const site = { node: root.name, database: root.database };
  const dependsOn = rootEngine ? [rootEngine] : [];
  const createQueue = queueState ? null : plan.add(proposeCreateQueue({ root: site, queue: queue.name, settings: queueSettings(queue), dependsOn }));
  if (queueState) {
    const configure = proposeConfigureQueue({ root: site, queue: queue.name, current: queueState.settings, settings: queueSettings(queue), dependsOn });
    if (configure) plan.add(configure);
  }
  return [rootEngine, createQueue].filter((x): x is string => x !== null);
}
