/**
 * A Plan: the checks found (errors stop an apply) and the ordered actions,
 * with counts for the summary line.
 */
import type { Diagnostic } from '../kernel/index.js';
import type { Action } from './action.js';

export interface Plan {
  checks: Diagnostic[];
  actions: Action[];
  summary: { add: number; change: number; remove: number };
  /** True when a check is an error: the plan must not be applied. */
  errored: boolean;
}
