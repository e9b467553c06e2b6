/**
 * Step 3, `drain`: a tick after the fence, applied on the subscriber — by
 * the worker already running (it holds the subscription's lock), or else by
 * the switchover's own engine ApplyWorker (which takes that lock, so two
 * never apply at once). Not a copy of the apply loop: it steps the engine's
 * worker until the subscription's position reaches the tick.
 */
import type pg from 'pg';
import type { DatabaseSpec } from '../../config/index.js';
import { connect } from '../../db/index.js';
import { ApplyWorker, WorkerBusyError, completedTick, forceTick } from '../../engine/index.js';
import { SwitchoverError } from './error.js';
import { sleep, type SwitchoverRun } from './run.js';

export interface DrainInput {
  provider: pg.Client;
  subscriber: pg.Client;
  providerDb: DatabaseSpec;
  subscriberDb: DatabaseSpec;
  queue: string;
  consumer: string;
}

export async function drain(run: SwitchoverRun, input: DrainInput): Promise<void> {
  await run.step('drain', async () => {
    const tick = await forceTick(input.provider, input.queue);
    run.report.drainTick = tick;
    run.report.drainedBy = await applyThrough(input, tick, run.options.timeoutMs);
    return { value: null, detail: `tick ${tick} applied by ${run.report.drainedBy === 'switchover' ? "switchover's own worker" : 'the running worker'}` };
  });
}

const applied = async (input: DrainInput): Promise<bigint> => BigInt((await completedTick(input.subscriber, input.queue, input.consumer)) ?? '0');

/** Waits until the subscriber has applied `tick`: by the running worker, or by our own. */
export async function applyThrough(input: DrainInput, tick: string, timeoutMs: number): Promise<'running-worker' | 'switchover'> {
  const { queue, consumer } = input;
  const target = BigInt(tick);
  const deadline = Date.now() + timeoutMs;
  const timedOut = () =>
    new SwitchoverError('switchover_drain_timeout', `the subscription "${consumer}" did not apply tick ${tick} of queue "${queue}" within ${timeoutMs} ms`, 'check the worker\'s log, then run the switchover again (writes stay fenced meanwhile), or raise --timeout');
  const workerProvider = await connect(input.providerDb.connection, 'switchover-worker');
  const workerSubscriber = await connect(input.subscriberDb.connection, 'switchover-worker').catch(async (err) => {
    await workerProvider.end();
    throw err;
  });
  try {
    const worker = new ApplyWorker(workerProvider, workerSubscriber, { queue, consumer });
    try {
      await worker.start();
    } catch (err) {
      if (!(err instanceof WorkerBusyError)) throw err;
      while ((await applied(input)) < target) {
        if (Date.now() > deadline) throw timedOut();
        await sleep(10);
      }
      return 'running-worker';
    }
    while ((await applied(input)) < target) {
      if (Date.now() > deadline) throw timedOut();
      await worker.step();
    }
    return 'switchover';
  } finally {
    await Promise.all([workerProvider.end().catch(() => undefined), workerSubscriber.end().catch(() => undefined)]);
  }
}
