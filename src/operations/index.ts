/**
 * operations — what an operator does once replication is set up: status of
 * every queue, node and table; compare/ (a folder of its parts: table
 * resolution, consistency point, chunk planning, hashing, narrowing,
 * report — counts and checksums by key range at one queue position);
 * switchover/ (a folder of its steps: preflight, fence, drain, sequences,
 * verify, matviews, reverse, hand-over, undo); resync. Library code over the
 * engine (whose own tables it reads and writes only through engine/'s typed
 * functions; reverse replication is engine/reverse.ts) and connections;
 * results are plain data that render turns into text or JSON.
 *
 * Must not import: planner (save its pure planner/privileges rule, which the
 * switchover shares with plan), executor, daemons, render, commands,
 * embedded, `@oclif/core`, `chalk`.
 */
export * from './status.js';
export * from './switchover/index.js';
export * from './compare/index.js';
export * from './resync.js';
export * from './table-name.js';
