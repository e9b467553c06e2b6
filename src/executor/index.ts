/**
 * executor — runs a Plan against the databases (and prepares schema copies: their
 * dry run is what `plan` hands the planner): takes an advisory lock per
 * database, runs each action through its kind's module (src/actions/: the
 * precondition re-checks that exist live there, e.g. create_role's), and
 * reports progress through hooks. It reads only the plan and a connection
 * spec per database name. Every action is safe to repeat, so a killed apply
 * is finished by running it again. Saved plans are verified before (by the
 * caller, with the planner's verifySavedPlan).
 *
 * Must not import: render, commands, daemons, `@oclif/core`, `chalk`.
 */
export * from './apply.js';
export * from './errors.js';
export * from './pg-dump.js';
export * from './schema-copy.js';
export * from './schema-toc.js';
