/**
 * Flags and helpers shared by commands: DSN flags parsed into connection
 * specs (errors shown without the password), and the daemon logging flags.
 */
import { Flags } from '@oclif/core';
import { DsnError, parseDsn, type ConnectionSpec } from '../../config/index.js';
import { createLogger, type Logger } from '../../daemons/index.js';
import { guardOutput } from './output-guard.js';

export const logFlags = {
  'log-format': Flags.string({ description: 'log line format', options: ['human', 'json'], default: 'human' }),
  'log-level': Flags.string({ description: 'least important level to log', options: ['debug', 'info', 'warn', 'error'], default: 'info' }),
};

export function makeLogger(flags: { 'log-format': string; 'log-level': string }): Logger {
  return createLogger({ format: flags['log-format'] as 'human' | 'json', level: flags['log-level'] as 'info' });
}

/** Parses a DSN flag; on a bad DSN, throws an Error whose message names the flag and the fix. */
export function dsnFlag(name: string, dsn: string): ConnectionSpec {
  try {
    const spec = parseDsn(dsn);
    guardOutput([spec.password, process.env.PGPASSWORD]);
    return spec;
  } catch (err) {
    if (err instanceof DsnError) throw new Error(`${err.code}: --${name}: ${err.message}\n    hint: ${err.hint}`);
    throw err;
  }
}
