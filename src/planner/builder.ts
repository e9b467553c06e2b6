/**
 * The plan being built: checks in the order found, and actions by id (the
 * first proposal of an id wins, so proposing twice is harmless). Every
 * planner step adds to one of these. Pure.
 */
import type { Diagnostic } from '../kernel/index.js';
import type { Action } from './action.js';

export type AddCheck = (severity: Diagnostic['severity'], code: string, message: string, hint: string, path?: string) => void;

export class PlanBuilder {
  readonly checks: Diagnostic[] = [];
  private readonly byId = new Map<string, Action>();

  readonly check: AddCheck = (severity, code, message, hint, path) => {
    this.checks.push({ severity, code, message, hint, ...(path ? { path } : {}) });
  };

  /** Adds an action (unless one of its id is there) and returns its id. */
  add(action: Action): string {
    if (!this.byId.has(action.id)) this.byId.set(action.id, action);
    return action.id;
  }

  actions(): Action[] {
    return [...this.byId.values()];
  }
}
