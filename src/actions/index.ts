/**
 * actions — one module per action kind (create_role … remove_capture): its
 * typed parameters, the constructor the planner proposes it with (id,
 * object, reason, params), its failure hint, the databases it needs, and how
 * it runs given the executor's context (connections by database name, the
 * engine's calls, the schema copy). The registry orders the kinds and
 * derives the plan's `Action` union. Pure data and functions: the engine and
 * `pg` are imported as types only, so the planner may import this module.
 *
 * Must not import: executor, db, daemons, render, commands, operations,
 * embedded, catalog/introspect, `node:fs`, `node:net`, `@oclif/core`, `chalk`;
 * engine and `pg` as types only.
 */
export * from './action.js';
export * from './context.js';
export * from './names.js';
export * from './registry.js';
export * from './create-role.js';
export * from './grant-role.js';
export * from './copy-schema.js';
export * from './install-engine.js';
export * from './upgrade-engine.js';
export * from './create-queue.js';
export * from './configure-queue.js';
export * from './capture-table.js';
export * from './capture-sequence.js';
export * from './subscribe.js';
export * from './create-branch-queue.js';
export * from './change-provider.js';
export * from './add-subscriber-table.js';
export * from './remove-subscriber-table.js';
export * from './remove-sequence.js';
export * from './remove-consumer.js';
export * from './remove-capture.js';
