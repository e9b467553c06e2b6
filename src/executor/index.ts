/**
 * executor — runs a Plan against the databases (and prepares schema copies: their
 * dry run is what `plan` hands the planner): refuses stale or foreign saved
 * plans, takes an advisory lock per node, re-checks each action's
 * precondition, runs it, and reports progress through hooks. Every action is
 * safe to repeat, so a killed apply is finished by running it again.
 *
 * Must not import: render, commands, daemons, `@oclif/core`, `chalk`.
 */
export * from './apply.js';
export * from './pg-dump.js';
export * from './schema-copy.js';
export * from './schema-toc.js';
