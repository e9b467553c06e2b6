/**
 * render — everything a person or a script reads: diagnostics and errors
 * (renderError: any thrown value as `error CODE: message` + hint, or JSON),
 * summaries, plans, status and compare results, as text (chalk) or JSON;
 * apply's progress lines. Pure functions from data to strings (the progress
 * lines: an object that remembers only which line is open).
 *
 * Must not import: catalog, executor, engine, daemons, commands, db, `pg`,
 * `@oclif/core`. (It may read the types of config and planner.)
 */
export * from './diagnostics.js';
export * from './desired-state.js';
export * from './schema-reference.js';
export * from './plan.js';
export * from './status.js';
export * from './switchover.js';
export * from './compare.js';
export * from './apply-progress.js';
