/**
 * Diagnostics for people (`FILE:LINE:COL: error CODE: message` plus an indented
 * hint, coloured when the terminal allows) and for machines (plain JSON).
 */
import chalk from 'chalk';
import type { Diagnostic } from '../kernel/index.js';

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
