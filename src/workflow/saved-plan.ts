/**
 * Saved plans (`plan --out`, `apply PLANFILE`): writing one (the plan with
 * the fingerprints of everything it was made from, no secrets), reading one,
 * and planning afresh from what it was made from — returning the FRESH plan
 * only when it equals the saved one, so what runs never comes from the file.
 * A tampered, foreign, stale or damaged plan throws a SavedPlanError.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { ENGINE_CONTENT, ENGINE_VERSION } from '../engine/index.js';
import { DiagnosticError, PgconveyError, type Diagnostic } from '../kernel/index.js';
import { SAVED_PLAN_FORMAT, SAVED_PLAN_VERSION, makeSavedPlan, verifySavedPlan, type SavedPlan } from '../planner/index.js';
import { loadDesiredState } from '../config/index.js';
import { planState, type Planned } from './plan.js';
import type { LoadedFile, WorkflowOptions } from './load.js';

/** A saved plan that must not be applied: `plan_file_invalid`, `plan_tampered`, `plan_for_other_databases`, `plan_stale`. */
export class SavedPlanError extends PgconveyError {}

/** Writes a saved plan: the plan with the fingerprints of everything it was made from, and no secrets. */
export async function writeSavedPlan(path: string, planned: Pick<Planned, 'state' | 'catalogs' | 'plan'>, now: Date = new Date()): Promise<SavedPlan> {
  const saved = makeSavedPlan({ state: planned.state, catalogs: planned.catalogs, engineVersion: ENGINE_VERSION, engineContent: ENGINE_CONTENT, plan: planned.plan, now });
  await writeFile(path, `${JSON.stringify(saved, null, 2)}\n`);
  return saved;
}

/** The saved plan in `path`, or null when `path` is not one (a desired-state file, then). Throws `plan_file_invalid` for a damaged one. */
export async function readSavedPlan(path: string): Promise<SavedPlan | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return null;
  }
  if (!text.trimStart().startsWith('{')) return null;
  let saved: Partial<SavedPlan>;
  try {
    saved = JSON.parse(text) as Partial<SavedPlan>;
  } catch {
    return null;
  }
  if (saved.format !== SAVED_PLAN_FORMAT) return null;
  if (saved.version !== SAVED_PLAN_VERSION || !saved.plan || !Array.isArray(saved.plan.actions) || !Array.isArray(saved.databases) || typeof saved.file !== 'string') {
    throw new SavedPlanError('plan_file_invalid', `${path} is a pgconvey plan of an unknown version or damaged`, 'make a new plan with this pgconvey: pgconvey plan FILE --out PLANFILE');
  }
  return saved as SavedPlan;
}

/**
 * Loads what the saved plan in `path` was made from, plans afresh from it and
 * the live catalogs, and returns the fresh plan when it equals the saved one.
 * Throws a SavedPlanError when it is tampered, foreign or stale, and a
 * DiagnosticError (ending in `plan_file_state_unusable`) when its file does not load.
 */
export async function planFromSaved(path: string, saved: SavedPlan, options: WorkflowOptions = {}): Promise<Planned & { loaded: LoadedFile }> {
  const result = await loadDesiredState(saved.file, options.env ?? process.env);
  options.onSecrets?.(result.secrets);
  if (!result.state) {
    const unusable: Diagnostic = {
      severity: 'error',
      code: 'plan_file_state_unusable',
      message: `the saved plan ${path} was made from ${saved.file}, which cannot be loaded here`,
      hint: 'run apply from the directory the plan was made in, with the same environment',
    };
    throw new DiagnosticError([...result.diagnostics, unusable]);
  }
  const loaded: LoadedFile = { file: saved.file, state: result.state, diagnostics: result.diagnostics, secrets: result.secrets, locate: result.locate ?? (() => undefined) };
  const fresh = await planState(loaded.state, loaded.locate);
  const problem = verifySavedPlan(saved, loaded.state, fresh.catalogs, ENGINE_VERSION, fresh.plan, ENGINE_CONTENT);
  if (problem) throw new SavedPlanError(problem.code, problem.message, problem.hint);
  return { loaded, ...fresh };
}
