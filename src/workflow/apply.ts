/**
 * Applying a plan: the one call of the executor in the workflow. A failure
 * while the actions run (an action the server refused, the apply lock held,
 * anything unexpected) comes back as an ApplyFailedError with the executor's
 * code (`apply_action_failed`, `apply_permission_denied`, `apply_locked`,
 * `apply_failed`…); a database that cannot be reached as its ConnectionError.
 */
import { ConnectionError } from '../db/index.js';
import { applyFailure, connectionsOf, executePlan, type ExecutorHooks } from '../executor/index.js';
import { PgconveyError } from '../kernel/index.js';
import type { Planned } from './plan.js';

/** A failure while a plan's actions ran; the actions before it stay done (run apply again to finish). */
export class ApplyFailedError extends PgconveyError {}

/** Runs the plan's actions in order (refused for a plan with errors); `hooks` see each action start, finish or fail. */
export async function applyPlan(planned: Pick<Planned, 'state' | 'plan' | 'tools'>, hooks: ExecutorHooks = {}): Promise<void> {
  if (planned.plan.errored) throw new PgconveyError('plan_has_errors', 'the plan has errors', 'fix what its checks name, then plan again');
  try {
    await executePlan(planned.plan, connectionsOf(planned.state.databases), hooks, planned.tools);
  } catch (err) {
    if (err instanceof ConnectionError) throw err;
    const failure = applyFailure(err);
    throw new ApplyFailedError(failure.code, failure.message, failure.hint, { cause: err });
  }
}
