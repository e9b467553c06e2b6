/**
 * A developer's instrument, off by default: with PGCONVEY_WORKER_PROFILE set
 * to a file path, the apply worker appends one JSON line per applied batch
 * to it with the milliseconds the batch spent in each phase (provider round
 * trips, waiting for the provider's rows, decoding in Node, subscriber
 * statements, commit) — the breakdown bench results are read with. Nothing
 * is timed or written when the variable is unset.
 */
import { appendFileSync } from 'node:fs';

const FILE = process.env.PGCONVEY_WORKER_PROFILE;

export class Phases {
  private ms: Record<string, number> = {};
  /** The process's CPU time when the batch began (node_cpu: the Node side's own CPU milliseconds of the batch). */
  private cpu: NodeJS.CpuUsage | undefined;

  constructor(readonly on = !!FILE) {}

  add(phase: string, ms: number): void {
    if (this.on) this.ms[phase] = (this.ms[phase] ?? 0) + ms;
  }

  /** Runs `body`, adding its wall time to `phase`. */
  async time<T>(phase: string, body: () => Promise<T>): Promise<T> {
    if (!this.on) return body();
    const t0 = performance.now();
    try {
      return await body();
    } finally {
      this.add(phase, performance.now() - t0);
    }
  }

  /** Writes the batch's line (with `extra` fields) and starts afresh. */
  flush(extra: Record<string, unknown>): void {
    if (!this.on) return;
    const cpu = process.cpuUsage(this.cpu);
    // at: milliseconds since the process started, when the batch ended (the first line shows the start-up's cost).
    const line: Record<string, unknown> = { ...extra, at: Math.round(performance.now()), node_cpu: Math.round((cpu.user + cpu.system) / 1000) };
    for (const [k, v] of Object.entries(this.ms)) line[k] = Math.round(v * 100) / 100;
    this.ms = {};
    appendFileSync(FILE!, `${JSON.stringify(line)}\n`);
  }

  reset(): void {
    this.ms = {};
    if (this.on) this.cpu = process.cpuUsage();
  }
}

/** A profile that times nothing. */
export const NO_PHASES = new Phases(false);
