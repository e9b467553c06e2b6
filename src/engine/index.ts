/**
 * engine — the replication machinery: versioned SQL/PL/pgSQL installed into a
 * `pgconvey` schema on each node (queue, rotating event tables, ticks,
 * generated capture triggers, consumers, subscriber positions), and the
 * TypeScript that drives it (ticker, apply worker, copier). Other modules
 * have no SQL on the `pgconvey` schema (test/unit/engine-boundary.test.ts;
 * enforced): they read and write the engine's state through its typed
 * calls (api.ts; engine-version.ts, queue-state.ts, subscription-state.ts,
 * fence.ts, process-state.ts, reverse.ts: the one module that knows about
 * reverse replication), its
 * lock ids (locks.ts), session settings (session.ts) and table states
 * (table-state.ts). The engine knows nothing of YAML files or plans.
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
export * from './ddl.js';
export * from './ddl-apply.js';
export * from './ddl-mismatch.js';
export * from './branch.js';
export * from './watermark.js';
export * from './change-provider.js';
export * from './cascade-switchover.js';
export * from './ticker.js';
export * from './copier.js';
export * from './session.js';
export * from './fence.js';
export * from './reverse.js';
export * from './queue-state.js';
export * from './subscription-state.js';
export * from './process-state.js';
export * from './table-state.js';
export { LOCK_CLASS, tryPieceLockSql, pieceLockHeld, pieceRunning } from './locks.js';
export * from './engine-version.js';
export { LOCK_XACT_SHARED_SQL, UNLOCK_SHARED_SQL, engineCheckSql, lockSharedAndReadEngine, type EngineLockForm, type StepGuard } from './engine-lock.js';
