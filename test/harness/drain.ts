// Applying a worker's batches in tests: through a given tick, or until idle.
//
// A worker that keeps up ticks waiting events itself (keep_up_tick), so while a writer runs it may never be idle:
// "step until idle" is not a bound. Tests force a tick and apply through it; one more step then finishes the last
// batch on the provider (the worker defers that to its next poll).
import type * as engine from '../../src/engine/index.js';

type Worker = Pick<engine.ApplyWorker, 'step'>;

export interface DrainOptions {
  /** Give up after this long (default 120 s). */
  timeoutMs?: number;
  /** A step failing this many times in a row is a stall (default 3). */
  failures?: number;
}

/** Steps `worker` until it is idle, or has applied a batch ending at `tick` or later and taken one more step. */
export async function drainThrough(worker: Worker, tick: string, options: DrainOptions = {}): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  const allowed = options.failures ?? 3;
  let failures = 0;
  let through = false;
  while (Date.now() < deadline) {
    try {
      const r = await worker.step();
      failures = 0;
      if (r.kind === 'idle' || through) return;
      if (BigInt(r.batch.endTick) >= BigInt(tick)) through = true;
    } catch (err) {
      if (++failures >= allowed) throw new Error(`worker stalled: the same batch failed ${allowed} times: ${(err as Error).message}`);
    }
  }
  throw new Error(`worker did not apply through tick ${tick} within ${options.timeoutMs ?? 120_000} ms`);
}
