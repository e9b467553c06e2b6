/**
 * daemons — the long-running processes behind `pgconvey run`: run loops with
 * backoff and clean shutdown hosting the engine's ticker, copier and applier,
 * structured logs and metrics. All state lives in the databases, so any
 * process may be killed and restarted anywhere.
 *
 * Must not import: planner, executor, render (except log line formatting),
 * commands, `@oclif/core`.
 */
export * from './log.js';
export * from './loop.js';
export * from './engine-daemons.js';
export * from './engine-guard.js';
export * from './metrics.js';
export * from './run-file.js';
