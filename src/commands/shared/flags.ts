/**
 * Flags and helpers shared by commands: DSN flags parsed into connection
 * specs (errors shown without the password), the daemon logging flags, and
 * the checks of a file's node names and durations that several commands make.
 */
import { Flags } from '@oclif/core';
import { DsnError, parseDsn, type ConnectionSpec, type DesiredState } from '../../config/index.js';
import { createLogger, type Logger } from '../../daemons/index.js';
import { PgconveyError, parseDuration } from '../../kernel/index.js';
import { guardOutput } from './output-guard.js';

export const logFlags = {
  'log-format': Flags.string({ description: 'log line format', options: ['human', 'json'], default: 'human' }),
  'log-level': Flags.string({ description: 'least important level to log', options: ['debug', 'info', 'warn', 'error'], default: 'info' }),
};

export function makeLogger(flags: { 'log-format': string; 'log-level': string }): Logger {
  return createLogger({ format: flags['log-format'] as 'human' | 'json', level: flags['log-level'] as 'info' });
}

/** Parses a DSN flag; on a bad DSN, throws `invalid_dsn` naming the flag and the fix. */
export function dsnFlag(name: string, dsn: string): ConnectionSpec {
  try {
    const spec = parseDsn(dsn);
    guardOutput([spec.password, process.env.PGPASSWORD]);
    return spec;
  } catch (err) {
    if (err instanceof DsnError) throw new PgconveyError(err.code, `--${name}: ${err.message}`, err.hint, { cause: err });
    throw err;
  }
}

/** Throws `unknown_node` when `node` is given and no queue of `state` has it. */
export function requireNode(state: DesiredState, node: string | undefined, file: string): void {
  const nodes = [...new Set(state.queues.flatMap((q) => q.nodes.map((n) => n.name)))];
  if (node !== undefined && !nodes.includes(node)) throw new PgconveyError('unknown_node', `no node "${node}" in ${file}`, `name one of: ${nodes.join(', ')}`);
}

/** A duration flag in ms; throws `invalid_duration` naming the flag. */
export function durationFlag(flag: string, value: string, hint = 'write a number with a unit: 500ms, 5s, 1min'): number {
  const ms = parseDuration(value);
  if (ms === undefined) throw new PgconveyError('invalid_duration', `--${flag} "${value}" is not a duration`, hint);
  return ms;
}
