/** configure_queue: sets a queue's settings (ticker, maintenance) to what the file asks for. */
import type { EngineQueueSettings } from '../catalog/model.js';
import { defineAction, makeAction, type ActionRecord, type ActionSite } from './action.js';

export interface ConfigureQueueParams {
  settings: EngineQueueSettings;
}

export type ConfigureQueueAction = ActionRecord<'configure_queue', ConfigureQueueParams>;

export function proposeConfigureQueue(a: { root: ActionSite; queue: string; current: EngineQueueSettings; settings: EngineQueueSettings; dependsOn: string[] }): ConfigureQueueAction | null {
  const want = a.settings;
  const changed = (Object.keys(want) as Array<keyof EngineQueueSettings>).filter((k) => want[k] !== a.current[k]);
  if (!changed.length) return null;
  return makeAction('configure_queue', 'update', a.root, a.queue, {
    queue: a.queue,
    reason: `its settings differ from the file: ${changed.map((k) => `${k} ${a.current[k]} → ${want[k]}`).join(', ')}`,
    dependsOn: a.dependsOn,
    params: { settings: want },
  });
}

export const configureQueue = defineAction<'configure_queue', ConfigureQueueParams>({
  kind: 'configure_queue',
  hint: "check the root's engine with `pgconvey status`",
  databases: (a) => [a.database],
  execute: async (a, ctx) => {
    await ctx.engine.configureQueue(ctx.db(a.database), a.queue!, a.params.settings);
  },
});
