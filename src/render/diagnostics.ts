/**
 * Diagnostics for people (`FILE:LINE:COL: error CODE: message` plus an indented
 * hint, coloured when the terminal allows) and for machines (plain JSON) — and
 * the one renderer of errors: any thrown value (a PgconveyError, a module's
 * error with a code and hint, a PostgreSQL server error, anything else) as
 * the same diagnostic lines or JSON.
 */
import chalk from 'chalk';
import { DiagnosticError, PgconveyError, type Diagnostic, type SourcePosition } from '../kernel/index.js';

export function renderDiagnostic(d: Diagnostic): string {
  const where = d.position ? `${d.position.file}:${d.position.line}:${d.position.col}: ` : '';
  const severity = d.severity === 'error' ? chalk.red.bold('error') : chalk.yellow.bold('warning');
  const head = `${chalk.bold(where)}${severity} ${chalk.dim(d.code)}: ${d.message}`;
  return d.hint ? `${head}\n    ${chalk.cyan('hint:')} ${d.hint}` : head;
}

export function renderDiagnostics(diagnostics: readonly Diagnostic[]): string {
  return diagnostics.map(renderDiagnostic).join('\n');
}

export function countLine(diagnostics: readonly Diagnostic[]): string {
  const errors = diagnostics.filter((d) => d.severity === 'error').length;
  const warnings = diagnostics.length - errors;
  const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
  return `${plural(errors, 'error')}, ${plural(warnings, 'warning')}`;
}

/** JSON form: the diagnostic as is, with the position flattened for easy scripting. */
export function diagnosticToJson(d: Diagnostic): Record<string, unknown> {
  return {
    severity: d.severity,
    code: d.code,
    message: d.message,
    ...(d.hint ? { hint: d.hint } : {}),
    ...(d.path ? { path: d.path } : {}),
    ...(d.position ? { file: d.position.file, line: d.position.line, col: d.position.col } : {}),
  };
}

/**
 * The diagnostics of any thrown value — what every command prints when it
 * fails, so each failure reads `error CODE: message` with a `hint:`:
 * - a DiagnosticError: all of its diagnostics;
 * - a PgconveyError, or any error with a string `code` and `hint` (the
 *   classes of the modules): as it is;
 * - a PostgreSQL server error (a SQLSTATE `code` and a `severity`): a stable
 *   code for its class (serverErrorCode), the server's words, detail and
 *   SQLSTATE in the message, the server's hint or one for the class;
 * - anything else: `internal_error`, with a hint to report it.
 */
export function errorDiagnostics(err: unknown): Diagnostic[] {
  if (err instanceof DiagnosticError) return err.diagnostics;
  if (err instanceof PgconveyError) return [err.toDiagnostic()];
  const server = asServerError(err);
  if (server) return [serverErrorDiagnostic(server)];
  const e = err as { code?: unknown; hint?: unknown; message?: unknown; position?: unknown } | null;
  if (e && typeof e === 'object' && isText(e.code) && /^[a-z][a-z0-9_]*$/.test(e.code) && isText(e.hint) && isText(e.message)) {
    return [{ severity: 'error', code: e.code, message: e.message, hint: e.hint, ...(isPosition(e.position) ? { position: e.position } : {}) }];
  }
  const message = err instanceof Error ? err.message || err.name : String(err);
  return [{ severity: 'error', code: 'internal_error', message: `pgconvey stopped on an unexpected error: ${message}`, hint: 'run it again; if it fails the same way, report it with this message and the command you ran' }];
}

/** Any thrown value as text for people: `error CODE: message` plus its hint (see errorDiagnostics). */
export function renderError(err: unknown): string {
  return renderDiagnostics(errorDiagnostics(err));
}

/**
 * Any thrown value as JSON for `--json`: `{ "error": { code, message, hint } }`
 * (the first error), with every diagnostic under `diagnostics` when there are several.
 */
export function errorToJson(err: unknown): { error: { code: string; message: string; hint?: string }; diagnostics?: Array<Record<string, unknown>> } {
  const diagnostics = errorDiagnostics(err);
  const first = diagnostics.find((d) => d.severity === 'error') ?? diagnostics[0]!;
  return {
    error: { code: first.code, message: first.message, ...(first.hint ? { hint: first.hint } : {}) },
    ...(diagnostics.length > 1 ? { diagnostics: diagnostics.map(diagnosticToJson) } : {}),
  };
}

/** The fields of a PostgreSQL server error (pg's DatabaseError) that the renderer uses. */
interface ServerError {
  code: string;
  message: string;
  severity: string;
  detail?: string;
  hint?: string;
}

function asServerError(err: unknown): ServerError | null {
  const e = err as Partial<ServerError> | null;
  if (!e || typeof e !== 'object' || !isText(e.code) || !/^[0-9A-Z]{5}$/.test(e.code) || !isText(e.severity)) return null;
  return { code: e.code, message: String(e.message ?? ''), severity: e.severity, ...(e.detail ? { detail: e.detail } : {}), ...(e.hint ? { hint: e.hint } : {}) };
}

/** A SQLSTATE's stable code and hint, by exact state, then by class (its first two characters); `server_error` otherwise. */
const SERVER_ERRORS: Array<{ state: string; code: string; hint: string }> = [
  { state: '28P01', code: 'wrong_password', hint: 'fix the password (and the variable it comes from)' },
  { state: '28', code: 'not_authorized', hint: "allow this user and host in the server's pg_hba.conf, or use another user" },
  { state: '42501', code: 'permission_denied', hint: "the role lacks a right the message names: grant it (`pgconvey plan FILE` names the grants pgconvey needs), or connect as a role that has it" },
  { state: '57014', code: 'statement_timeout', hint: 'the statement was cancelled (statement_timeout, or by an operator): run it again when the server is less busy, or raise the timeout' },
  { state: '55P03', code: 'lock_not_available', hint: 'another session holds a lock it needs: run it again once that session is done (pg_locks and pg_stat_activity show which)' },
  { state: '53', code: 'server_resources', hint: 'the server is out of a resource (connections, memory, disk): free some, then run it again' },
  { state: '57P', code: 'server_shutting_down', hint: 'the server is shutting down or restarting: run it again once it is up' },
];

/** The stable code of a SQLSTATE: see SERVER_ERRORS. */
export function serverErrorCode(sqlstate: string): string {
  return serverErrorKind(sqlstate)?.code ?? 'server_error';
}

function serverErrorKind(sqlstate: string): { code: string; hint: string } | undefined {
  return SERVER_ERRORS.find((k) => k.state === sqlstate) ?? SERVER_ERRORS.find((k) => k.state.length < 5 && sqlstate.startsWith(k.state));
}

function serverErrorDiagnostic(e: ServerError): Diagnostic {
  const kind = serverErrorKind(e.code);
  const detail = e.detail ? ` (${e.detail.replace(/\s+/g, ' ').trim()})` : '';
  return {
    severity: 'error',
    code: kind?.code ?? 'server_error',
    message: `the server said: ${e.message}${detail} (SQLSTATE ${e.code})`,
    hint: e.hint ?? kind?.hint ?? 'as the message says; run it again once the cause is fixed',
  };
}

const isText = (v: unknown): v is string => typeof v === 'string';

function isPosition(p: unknown): p is SourcePosition {
  const q = p as SourcePosition | null;
  return !!q && typeof q === 'object' && typeof q.file === 'string' && typeof q.line === 'number' && typeof q.col === 'number';
}
