/** Step 4, `sequences`: every sequence the queue carries moves, on the node taking writes, past the other node's value plus --sequence-margin. */
import type pg from 'pg';
import { syncSequences } from '../../engine/index.js';
import type { SwitchoverRun } from './run.js';

export async function moveSequences(run: SwitchoverRun, provider: pg.Client, subscriber: pg.Client, queue: string, names: { to: string; from: string }): Promise<void> {
  await run.step('sequences', async () => {
    run.report.sequences = await syncSequences(provider, subscriber, queue, run.options.sequenceMargin);
    return { value: null, detail: `${run.report.sequences} sequences on "${names.to}" moved past "${names.from}" + ${run.options.sequenceMargin}` };
  });
}
