/** Bad input or a setup that cannot be compared: a code (docs/errors.md), what is wrong, and the fix. */
import { PgconveyError } from '../../kernel/index.js';

export class CompareError extends PgconveyError {
  /** The hint again, under the name the CLI framework prints as "Try this". */
  readonly suggestions: string[];
  constructor(code: string, message: string, hint: string) {
    super(code, message, hint);
    this.suggestions = [hint];
  }
}
