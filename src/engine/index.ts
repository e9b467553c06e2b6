/**
 * engine — the replication machinery: versioned SQL/PL/pgSQL installed into a
 * `pgconvey` schema on each node (queue, rotating event tables, ticks,
 * generated capture triggers, consumers, subscriber positions), and the
 * TypeScript that drives it (ticker, apply worker); typed reads and writes of
 * its own tables for the operations (fences, reverse replication, a queue's
 * contents, a subscription's position and switched-over mark). The engine
 * knows nothing of YAML files or plans.
 *
 * Must not import: config (other than connection types), catalog, planner,
 * executor, daemons, render, commands, `@oclif/core`, `chalk`.
 */
export * from './install.js';
export * from './snapshot.js';
export * from './api.js';
export * from './apply.js';
export * from './batch-reader.js';
export * from './worker.js';
export * from './ticker.js';
export * from './copier.js';
export * from './session.js';
export * from './fence.js';
export * from './reverse.js';
export * from './queue-state.js';
export * from './subscription-state.js';
export * from './process-state.js';
export * from './table-state.js';
export { LOCK_CLASS, tryPieceLockSql, pieceLockHeld } from './locks.js';
