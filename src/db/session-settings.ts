/**
 * The server timeouts pgconvey's sessions run without, in one place. A
 * server, database or role may set them (statement_timeout = 30s is a common
 * production default); they would cancel pgconvey's long statements and
 * transactions — a COPY of hours, a batch transaction, a merge, a count. A
 * wait that must stay short sets its own bound (SET LOCAL lock_timeout) where
 * it waits. connect() turns them all off for every session; NO_TIMEOUTS_SQL
 * turns them off again on a session that may not come from connect().
 */

/** Each timeout, with the PostgreSQL major version that has it. */
export const SESSION_TIMEOUTS: ReadonlyArray<{ readonly name: string; readonly since: number }> = [
  { name: 'statement_timeout', since: 10 },
  { name: 'lock_timeout', since: 10 },
  { name: 'idle_in_transaction_session_timeout', since: 10 },
  { name: 'idle_session_timeout', since: 14 },
  { name: 'transaction_timeout', since: 17 },
];

/** The timeouts every supported server (PostgreSQL 10 on) knows, off as startup options (`-c name=0 …`): in force before the first statement. */
export const NO_TIMEOUTS_STARTUP_OPTIONS = SESSION_TIMEOUTS.filter((t) => t.since <= 10)
  .map((t) => `-c ${t.name}=0`)
  .join(' ');

/**
 * Every timeout the server knows (the newer ones only where they exist) set
 * to 0 for the session, where it is not 0 already. One statement; its rows
 * are of no use.
 */
export const NO_TIMEOUTS_SQL =
  "SELECT pg_catalog.set_config(name, '0', false) FROM pg_catalog.pg_settings " +
  `WHERE name IN (${SESSION_TIMEOUTS.map((t) => `'${t.name}'`).join(', ')}) AND setting <> '0'`;
