/**
 * commands — the oclif commands: thin adapters that parse flags, call the
 * library (workflow/), hand results to render, and map outcomes to exit
 * codes. They throw on failure; their base (shared/command.ts) prints any
 * failure through render/'s renderError and exits 1 (oclif's usage errors
 * exit 2; `plan --detailed-exitcode` 2 for changes). The only place that
 * touches oclif.
 *
 * Must not: hold SQL (nor import catalog, planner, executor, engine,
 * operations, db, `pg`), format an error line by hand, build output strings
 * beyond gluing rendered pieces, or be imported by any other module.
 */
export {};
