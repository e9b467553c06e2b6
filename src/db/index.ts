/**
 * db — shared kernel for connections: turning a ConnectionSpec into a `pg`
 * client that runs without the server's timeouts (session-settings.ts), a
 * body run in one transaction (inTransaction), and error
 * translation (unreachable host, wrong password) into diagnostics that never
 * show a password. No domain knowledge (pgconvey's advisory locks are the
 * engine's: src/engine/locks.ts).
 *
 * Must not import: any src/ module other than kernel and config/connection.
 */
export * from './connect.js';
export * from './transaction.js';
export * from './session-settings.js';
