/**
 * The one set of session settings under which pgconvey reads and writes
 * values as text — the capture functions, the batch reader, the apply
 * worker, the copy and compare all use it, on every server, whatever the
 * server, database, role or environment (PGOPTIONS, PGTZ, PGDATESTYLE)
 * default to. Under these settings a type's text output is a function of the
 * value alone, and the other side's input function reads it back exactly.
 */

/** Setting → value, in the order they are applied. */
export const EXACT_SETTINGS: ReadonlyArray<readonly [string, string]> = [
  ['DateStyle', 'ISO, YMD'],
  ['IntervalStyle', 'postgres'],
  ['TimeZone', 'UTC'],
  ['extra_float_digits', '3'],
  ['bytea_output', 'hex'],
  ['lc_monetary', 'C'],
  ['xmloption', 'content'],
];

/** The settings as SET statements for one session (one simple-query string). */
export const EXACT_SESSION_SQL = EXACT_SETTINGS.map(([name, value]) => `SET ${name} = '${value}'`).join('; ');

/** The settings as SET clauses of a CREATE FUNCTION (pinned for the function's duration). */
export const EXACT_FUNCTION_SET_CLAUSES = EXACT_SETTINGS.map(([name, value]) => ` SET ${name} = '${value}'`).join('');

/**
 * The server's timeouts, off for the session (the one statement of
 * db/session-settings.ts, which connect() runs too): for sessions that may
 * not come from connect(), such as a copy's.
 */
export { NO_TIMEOUTS_SQL } from '../db/session-settings.js';
