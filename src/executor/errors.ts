/**
 * How an apply fails, as what a command prints: an action's failure (its
 * kind's hint from src/actions/, apply_permission_denied for SQLSTATE 42501,
 * the schema copy's own code), the apply lock held by another apply, or
 * anything else (apply_failed) — always a code, a message and a hint.
 */
import { moduleOf, type Action } from '../actions/index.js';
import { PgconveyError } from '../kernel/index.js';
import { SchemaCopyError } from './schema-copy.js';

export class ApplyLockedError extends PgconveyError {
  constructor(
    readonly database: string,
    readonly holder: string,
  ) {
    super('apply_locked', `another pgconvey apply is running on database "${database}" (${holder})`, 'wait for it to finish, then run apply again', { object: `database ${database}` });
  }
}

/** An action that failed: its code (the schema copy's own, apply_permission_denied for SQLSTATE 42501, else apply_action_failed), a message naming it, a hint. */
export class ApplyActionError extends PgconveyError {
  constructor(
    readonly action: Action,
    cause: unknown,
  ) {
    const { code, message, hint } = describe(action, cause);
    super(code, message, hint, { object: action.id, cause });
  }
}

function describe(action: Action, cause: unknown): { code: string; message: string; hint: string } {
  const sqlState = (cause as { code?: unknown }).code;
  const why = cause instanceof Error ? cause.message : String(cause);
  const state = typeof sqlState === 'string' && /^[0-9A-Z]{5}$/.test(sqlState) ? ` (SQLSTATE ${sqlState})` : '';
  const copy = cause instanceof SchemaCopyError;
  // A right the server refused (42501): the plan names the grants (src/planner/privileges.ts).
  const denied = !copy && sqlState === '42501';
  const hint = moduleOf(action).hint;
  const base = copy ? cause.hint : denied ? `${hint}; \`pgconvey plan FILE\` names the grants the file's roles lack (see docs/security.md)` : hint;
  return {
    code: copy ? cause.code : denied ? 'apply_permission_denied' : 'apply_action_failed',
    message: copy ? `action ${action.id}: ${why}` : `action ${action.id} failed: ${why}${state}`,
    hint: `${base}; then run apply again (every action is idempotent: what is done is skipped)`,
  };
}

/**
 * Any failure of an apply, as what the command prints: an action's failure
 * (apply_action_failed, or the schema copy's own code), the apply lock, or
 * anything else (apply_failed) — always a code, a message and a hint.
 */
export function applyFailure(err: unknown): { code: string; message: string; hint: string } {
  if (err instanceof ApplyActionError || err instanceof ApplyLockedError) return { code: err.code, message: err.message, hint: err.hint };
  return { code: 'apply_failed', message: `apply stopped: ${(err as Error)?.message ?? String(err)}`, hint: 'run apply again (every action is idempotent); if it fails the same way, report it with this message' };
}
