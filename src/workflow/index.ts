/**
 * workflow — pgconvey as a library: load a desired-state file, plan against
 * the live databases (with the schema copies' dry runs), save a plan and
 * read and verify a saved one, apply; and run, status, compare, resync and
 * switchover as operations/ and daemons/ provide them. The CLI commands and
 * the demo call these; src/index.ts exports them. Results are data; errors
 * are PgconveyErrors (render/'s renderError prints any of them).
 *
 * Must not import: render, commands, embedded, demo, `@oclif/core`, `chalk`.
 */
export * from './load.js';
export * from './plan.js';
export * from './saved-plan.js';
export * from './apply.js';
export * from './engine.js';
export * from './operations.js';
export * from './execute.js';
