/**
 * One switchover in one direction while it runs: the report its steps fill
 * in, whether a fence is set (a failure then leaves writes fenced, and its
 * hint says how to finish or undo), and the timing of each step.
 */
import { SwitchoverError } from './error.js';
import type { SwitchoverHooks, SwitchoverOptions } from './options.js';
import { emptyReport, type NodeRef, type StepName, type SwitchoverReport } from './report.js';
import type { Topology } from './topology.js';

export class SwitchoverRun {
  readonly report: SwitchoverReport;
  /** A fence was set (or found): a failure leaves writes fenced. */
  fenced = false;

  constructor(
    readonly topology: Topology,
    readonly options: SwitchoverOptions,
    private readonly hooks: SwitchoverHooks,
    readonly file: string,
    direction: 'forward' | 'rollback',
    from: NodeRef,
    to: NodeRef,
  ) {
    this.report = emptyReport(topology.queue.name, direction, from, to);
  }

  /** How to finish or undo this switchover once something is fenced. */
  fencedHint(): string {
    const { from, to } = this.report;
    return (
      `writes stay fenced; \`pgconvey status ${this.file}\` shows the fences. Finish it with \`pgconvey switchover ${this.file} --to ${to.node}\` (every step resumes), ` +
      `or undo it with \`pgconvey switchover ${this.file} --to ${from.node}\` ("${from.node}" takes writes again)`
    );
  }

  /** Runs a step, timing it; errors carry the report so far. */
  async step<T>(name: StepName, body: () => Promise<{ value: T; detail: string }>): Promise<T> {
    const started = performance.now();
    try {
      const { value, detail } = await body();
      const done = { step: name, ms: Math.round(performance.now() - started), detail };
      this.report.steps.push(done);
      this.hooks.onStep?.(done, this.report);
      return value;
    } catch (err) {
      if (err instanceof SwitchoverError) {
        throw new SwitchoverError(err.code, err.message, this.fenced && err.hint === '' ? this.fencedHint() : err.hint || 'fix the cause and run the switchover again', this.report);
      }
      const sqlState = (err as { code?: unknown }).code;
      if (typeof sqlState !== 'string' || !/^[0-9A-Z]{5}$/.test(sqlState)) throw err;
      throw new SwitchoverError(
        'switchover_step_failed',
        `step ${name} failed: ${(err as Error).message} (SQLSTATE ${sqlState})`,
        this.fenced ? `fix the cause; ${this.fencedHint()}` : 'nothing was changed; fix the cause and run the switchover again',
        this.report,
      );
    }
  }

  alreadyDone(note: string): SwitchoverReport {
    this.report.outcome = 'already-done';
    this.report.note = note;
    return this.report;
  }

  /** Asks the caller (after the preconditions, before anything changes); a no cancels, changing nothing. */
  async confirm(): Promise<void> {
    if (this.hooks.confirm && !(await this.hooks.confirm(this.report))) {
      throw new SwitchoverError('switchover_cancelled', 'switchover cancelled; nothing was changed', 'run it again and answer "yes", or pass --auto-approve');
    }
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
