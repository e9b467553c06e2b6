/**
 * db — shared kernel for connections: turning a ConnectionSpec into a `pg`
 * client, scoped clients and transactions, advisory locks with clear "held by"
 * messages, and error translation (unreachable host, wrong password) into
 * diagnostics that never show a password. No domain knowledge.
 *
 * Must not import: any src/ module other than kernel and config/connection.
 */
export * from './connect.js';
