/**
 * commands — the oclif commands: thin adapters that parse flags, call the
 * library (config → catalog → planner → executor / daemons), hand results to
 * render, and map outcomes to exit codes. The only place that touches oclif.
 *
 * Must not: hold SQL, build output strings beyond gluing rendered pieces, or be
 * imported by any other module.
 */
export {};
