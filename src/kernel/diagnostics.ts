/**
 * Diagnostics: the one shape for every problem a user can read — a severity, a
 * stable snake_case code (part of the JSON contract), a message that names the
 * problem, a hint that names the fix, and where known a position in a file.
 * Modules return lists of these instead of throwing, so a command can report
 * every problem at once.
 */
import { PgconveyError } from './errors.js';

export type Severity = 'error' | 'warning';

export interface SourcePosition {
  file: string;
  /** 1-based line. */
  line: number;
  /** 1-based column. */
  col: number;
}

export interface Diagnostic {
  severity: Severity;
  /** Stable snake_case identifier, e.g. `unknown_key`; documented in docs/errors.md. */
  code: string;
  /** What is wrong, naming the offending thing. Never contains a secret. */
  message: string;
  /** What to do about it. */
  hint?: string;
  /** Where in the desired-state file, when the problem comes from one. */
  position?: SourcePosition;
  /** A dotted path into the document (e.g. `queues.app.nodes.new.provider`), when known. */
  path?: string;
}

export function hasErrors(diagnostics: readonly Diagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === 'error');
}

/** Orders diagnostics by file position, then code, so output is deterministic. */
export function sortDiagnostics(diagnostics: readonly Diagnostic[]): Diagnostic[] {
  return [...diagnostics].sort((a, b) => {
    const la = a.position?.line ?? Number.MAX_SAFE_INTEGER;
    const lb = b.position?.line ?? Number.MAX_SAFE_INTEGER;
    if (la !== lb) return la - lb;
    const ca = a.position?.col ?? 0;
    const cb = b.position?.col ?? 0;
    if (ca !== cb) return ca - cb;
    return a.code.localeCompare(b.code);
  });
}

/**
 * An error carrying a list of diagnostics, for code paths that must abort
 * with every problem at once (a file that does not load, a saved plan whose
 * file does not): its code, message and hint are those of its first error,
 * and the renderer prints all of its diagnostics.
 */
export class DiagnosticError extends PgconveyError {
  readonly diagnostics: Diagnostic[];
  constructor(diagnostics: Diagnostic[]) {
    const first = diagnostics.find((d) => d.severity === 'error') ?? diagnostics[0];
    super(first?.code ?? 'invalid', first?.message ?? 'no diagnostics', first?.hint ?? '', first?.position ? { position: first.position } : {});
    this.diagnostics = diagnostics;
  }
}
