/**
 * catalog — read-only introspection of every database named in the desired
 * state: server version, tables with columns and keys, sequences, roles,
 * privileges that matter, and the engine's own state. One consistent snapshot
 * per node; named, ordered, schema-qualified queries; nothing is written.
 *
 * Must not import: planner, executor, engine (except its read-only state
 * queries), daemons, render, commands, `@oclif/core`, `chalk`.
 */
export {};
