/**
 * What the daemons report as they work (DaemonEvents), and the Prometheus
 * metrics of `pgconvey run` that count it (run-metrics.ts), loaded only when
 * asked for: prom-client costs about 0.1 s of every start of `run`.
 */
import type { RunMetrics } from './run-metrics.js';

export type { RunMetrics } from './run-metrics.js';

/** What the daemons report as they work; every method is optional to call. */
export interface DaemonEvents {
  batchApplied(queue: string, node: string, events: number, seconds: number): void;
  ticked(queue: string): void;
  tableCopied(queue: string, node: string, table: string, rows: number, bytes: number): void;
  copyFailed(queue: string, node: string, table: string): void;
  error(component: string): void;
  /** A worker waits at a batch it cannot apply (a script failing there, a table lacking columns): its code; null once a batch applies. */
  workerWaiting?(queue: string, node: string, code: string | null): void;
}


/** The metrics of `pgconvey run` (prom-client is loaded now, not at start). */
export async function createRunMetrics(): Promise<RunMetrics> {
  const { RunMetrics } = await import('./run-metrics.js');
  return new RunMetrics();
}
