/**
 * config — the desired-state file: YAML with source positions, `${VAR}`
 * interpolation, JSON-Schema validation, semantic checks, and normalisation
 * into a trusted `DesiredState`. No I/O beyond reading the file and the
 * environment.
 *
 * Must not import: catalog, planner, executor, engine, daemons, render,
 * commands, db, `pg`, `@oclif/core`, `chalk`.
 */
export * from './load.js';
export * from './desired-state.js';
export * from './connection.js';
export * from './names.js';
export { nodesTopDown } from './node-order.js';
export { desiredStateSchema } from './schema-check.js';
