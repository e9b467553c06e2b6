/**
 * engine — the replication machinery: versioned SQL/PL/pgSQL installed into a
 * `pgconvey` schema on each node (queue, event tables, ticks, capture
 * triggers, consumers), and the TypeScript that drives it (ticker, copier,
 * applier). The engine knows nothing of YAML files or plans.
 *
 * Must not import: config, catalog, planner, executor, daemons, render,
 * commands, `@oclif/core`, `chalk`.
 */
export {};
