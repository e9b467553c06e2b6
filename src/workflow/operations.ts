/**
 * What the workflow does once replication is set up, as the CLI and the
 * demo call it: run the daemons of a file, read its status, compare its
 * tables, resync some, switch over. Each is the function of operations/ or
 * daemons/ itself, re-exported here so the library has one place to look.
 */
export { runDesiredState, shutdownSignal, createLogger, createRunMetrics, type RunMetrics, type RunOptions, type RunResult, type Logger } from '../daemons/index.js';
export { collectStatus, type StatusReport } from '../operations/index.js';
export { compareState, COMPARE_DEFAULTS, CompareError, type CompareReport, type CompareProgress } from '../operations/index.js';
export { resyncTables, ResyncError, TableNameError } from '../operations/index.js';
export { switchover, resolveTarget, SWITCHOVER_DEFAULTS, SwitchoverError, type SwitchoverReport } from '../operations/index.js';
