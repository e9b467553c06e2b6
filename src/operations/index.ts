/**
 * operations — what an operator does once replication is set up: status of
 * every queue, node and table; compare (counts and checksums by key range at
 * one queue position); switchover (fence, drain, sequences, verify, reverse).
 * Library code over the engine and connections; results are plain data that
 * render turns into text or JSON.
 *
 * Must not import: planner (save its pure planner/privileges rule, which the
 * switchover shares with plan), executor, daemons, render, commands,
 * embedded, `@oclif/core`, `chalk`.
 */
export * from './status.js';
export * from './switchover/index.js';
export * from './compare.js';
export * from './resync.js';
export * from './table-name.js';
