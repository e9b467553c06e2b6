/**
 * kernel — the small shared vocabulary every other module may use: diagnostics
 * (problems with a code, a position and a fix hint), the one error type
 * (PgconveyError: code, message, hint), qualified names as data, secret masking for DSNs,
 * duration parsing, the names of copy pins with the rule of which are
 * still needed, and the names of branch watermarks (shared by the engine,
 * plan and status). It performs no I/O.
 *
 * Must not import: any other src/ module (it is the bottom of the graph), `pg`,
 * `@oclif/core`, `chalk`.
 */
export * from './diagnostics.js';
export * from './errors.js';
export * from './qualified-name.js';
export * from './secrets.js';
export * from './duration.js';
export * from './suggest.js';
export * from './sql-format.js';
export * from './copy-pins.js';
export * from './watermark-name.js';
