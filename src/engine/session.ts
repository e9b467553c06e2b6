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
 * Timeouts a server, database or role may set (statement_timeout = 30s is a
 * common production default) that would cancel pgconvey's long statements
 * and transactions — a COPY of hours, a batch transaction, a merge — off for
 * this session. Only settings the server knows are set (idle_session_timeout
 * exists from PostgreSQL 14, transaction_timeout from 17). A wait that must
 * stay short sets its own bound (SET LOCAL lock_timeout) where it waits.
 */
export const NO_TIMEOUTS_SQL =
  "SELECT pg_catalog.set_config(name, '0', false) FROM pg_catalog.pg_settings " +
  "WHERE name IN ('statement_timeout', 'lock_timeout', 'idle_in_transaction_session_timeout', 'idle_session_timeout', 'transaction_timeout')";
