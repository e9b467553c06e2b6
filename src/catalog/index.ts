/**
 * catalog — read-only introspection of every database in the desired state:
 * server version, tables with columns and keys (primary and unique NOT NULL),
 * generated columns, partitioning, sequences, roles, the privileges that
 * matter, and the engine's own state (read through the engine's typed calls).
 * One consistent snapshot per node; named, ordered, schema-qualified queries;
 * nothing is written.
 *
 * Must not import: planner, executor, daemons, render, commands, embedded,
 * `@oclif/core`, `chalk`.
 */
export * from './model.js';
export * from './introspect.js';
export * from './cluster.js';
export * from './column-types.js';
