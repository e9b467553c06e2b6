/**
 * pgconvey's library API (the package's main export): the workflow the CLI
 * runs — load a file, plan, save and verify a plan, apply, run, status,
 * compare, resync, switchover — with the types it takes and returns, the
 * one error type and its renderer. See "Using pgconvey as a library" in
 * docs/architecture.md.
 *
 * Must not export: commands (oclif), embedded, demo (they need devDependencies).
 */
export * from './workflow/index.js';
export * from './config/index.js';
export * from './kernel/index.js';
export { ConnectionError } from './db/index.js';
export type { Plan, Action, SavedPlan } from './planner/index.js';
export type { ExecutorHooks, ExecutorTools } from './executor/index.js';
export type { NodeCatalog } from './catalog/index.js';
export { errorDiagnostics, errorToJson, renderError, renderDiagnostics, renderPlanHuman, renderPlanMarkdown, planToJson, renderStatusHuman, statusToJson, renderCompareHuman, compareToJson, renderSwitchoverSummary, switchoverToJson } from './render/index.js';
