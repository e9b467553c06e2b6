/** A switchover that refused or stopped: a code (docs/errors.md), what happened, the fix, and the report of what was done before. */
import { PgconveyError } from '../../kernel/index.js';
import type { SwitchoverReport } from './report.js';

export class SwitchoverError extends PgconveyError {
  constructor(
    code: string,
    message: string,
    hint: string,
    /** What was done before the error, when anything was. */
    readonly report: SwitchoverReport | null = null,
  ) {
    super(code, message, hint);
  }
}
