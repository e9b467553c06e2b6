/**
 * planner — a pure function from (DesiredState, catalogs) to a Plan: checks
 * (errors and warnings with codes and hints) and ordered actions with ids,
 * reasons and dependencies, proposed through the action modules of
 * src/actions/. One file per step (checks, engine, queue, selection, tables,
 * sequences, consumers, subscribers, roles, schema-copy), composed by
 * build.ts; saved plans and the privilege rules. Deterministic, unit-tested
 * on plain data.
 *
 * Must not import: `pg`, `node:fs`, `node:net` or any I/O; catalog (other
 * than its types), executor, engine (save engine/table-state: the table
 * states, pure), daemons, render, commands, db.
 */
export * from './action.js';
export * from './plan.js';
export * from './input.js';
export * from './build.js';
export { queueSettings } from './queue.js';
export { replicatedTables } from './selection.js';
export * from './saved-plan.js';
export * from './privileges.js';
