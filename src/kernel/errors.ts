/**
 * The one error type: every failure pgconvey can explain carries a stable
 * snake_case code (documented in docs/errors.md, part of the JSON contract),
 * a message naming what failed, a hint naming the fix, and where known the
 * object it is about or a position in a file. Modules throw subclasses of it
 * (their fields stay typed); commands render any of them — and anything else,
 * raw server errors included — through the one renderer in render/.
 */
import type { Diagnostic, SourcePosition } from './diagnostics.js';

export interface PgconveyErrorOptions {
  /** The object it is about (a table `schema.name`, a node, a database), for machines and for the message's reader. */
  object?: string;
  /** Where in the desired-state file, when the problem comes from one. */
  position?: SourcePosition;
  /** The error that caused it (kept for `--debug` and for tests; its message is already in `message`). */
  cause?: unknown;
}

export class PgconveyError extends Error {
  readonly code: string;
  readonly hint: string;
  readonly object?: string;
  readonly position?: SourcePosition;

  constructor(code: string, message: string, hint: string, options: PgconveyErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = hint;
    if (options.object !== undefined) this.object = options.object;
    if (options.position !== undefined) this.position = options.position;
  }

  /** As a diagnostic (severity error), the form every renderer takes. */
  toDiagnostic(): Diagnostic {
    return { severity: 'error', code: this.code, message: this.message, hint: this.hint, ...(this.position ? { position: this.position } : {}) };
  }
}

export function isPgconveyError(err: unknown): err is PgconveyError {
  return err instanceof PgconveyError;
}
