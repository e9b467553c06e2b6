/**
 * What `plan` and `apply` share: load the file, read every database's
 * catalog, build the plan — printing (password-free) why when one of these
 * fails — and the same for a saved plan (`plan --out`), which is refused
 * when it was made for other databases or is stale. Also prints a connection
 * error with its fix.
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { NodeCatalog } from '../../catalog/index.js';
import { introspectDatabases } from '../../catalog/index.js';
import { loadDesiredState, type DesiredState } from '../../config/index.js';
import { ConnectionError } from '../../db/index.js';
import { ENGINE_CONTENT, ENGINE_VERSION } from '../../engine/index.js';
import { findPgDump } from '../../executor/index.js';
import { scrubSecrets } from '../../kernel/index.js';
import { SAVED_PLAN_FORMAT, SAVED_PLAN_VERSION, buildPlan, makeSavedPlan, verifySavedPlan, type PgDumpTool, type Plan, type SavedPlan } from '../../planner/index.js';
import { renderDiagnostics } from '../../render/index.js';
import { guardOutput } from './output-guard.js';

export interface PlannedFile {
  /** Prints a line with every known password of the file scrubbed. */
  print: (text: string) => void;
  /** Absent when the file is invalid or a database could not be read (the reason is printed). */
  state?: DesiredState;
  plan?: Plan;
  catalogs?: Record<string, NodeCatalog>;
  /** The tools found here that the plan was made with; apply runs these, never a path from a plan file. */
  tools?: { pgDump: PgDumpTool | null };
}

/** Loads a desired-state file for commands that do not plan (run, status…): the state, or its problems printed. */
export async function loadFile(file: string): Promise<{ print: (text: string) => void; state?: DesiredState }> {
  const loaded = await loadDesiredState(file);
  guardOutput(loaded.secrets);
  const print = (text: string) => process.stdout.write(`${scrubSecrets(text, loaded.secrets)}\n`);
  if (!loaded.state) print(renderDiagnostics(loaded.diagnostics));
  return { print, state: loaded.state };
}

export async function planFile(file: string): Promise<PlannedFile> {
  const { print, state } = await loadFile(file);
  if (!state) return { print };
  try {
    return { print, ...(await freshPlan(state)) };
  } catch (err) {
    if (!printKnownError(print, err)) throw err;
    return { print };
  }
}

/** Reads the catalogs and plans: the one way a plan is made, for `plan`, `apply FILE` and `apply PLANFILE` alike. */
async function freshPlan(state: DesiredState): Promise<Required<Omit<PlannedFile, 'print'>>> {
  const catalogs = await introspectDatabases(state.databases);
  const tools = { pgDump: state.prepare.schema === 'copy' ? await findPgDump() : null };
  return { state, catalogs, tools, plan: buildPlan({ state, catalogs, engineVersion: ENGINE_VERSION, engineContent: ENGINE_CONTENT, tools }) };
}

/** Writes a saved plan: the plan with the fingerprints of everything it was made from, and no secrets. */
export async function writeSavedPlan(path: string, planned: Pick<Required<PlannedFile>, 'state' | 'catalogs' | 'plan'>): Promise<void> {
  const saved = makeSavedPlan({ state: planned.state, catalogs: planned.catalogs, engineVersion: ENGINE_VERSION, engineContent: ENGINE_CONTENT, plan: planned.plan, now: new Date() });
  await writeFile(path, `${JSON.stringify(saved, null, 2)}\n`);
}

/** The saved plan in `path`, or null when `path` is not one (a desired-state file, then). */
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

export class SavedPlanError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

/**
 * Loads what a saved plan was made from, plans afresh from it and the live
 * catalogs, and returns the FRESH plan only when it equals the saved one (so
 * what runs never comes from the file). Prints the reason and returns no plan
 * when the saved plan is tampered, foreign or stale.
 */
export async function planFromSaved(path: string, saved: SavedPlan): Promise<PlannedFile> {
  const loaded = await loadDesiredState(saved.file);
  guardOutput(loaded.secrets);
  const print = (text: string) => process.stdout.write(`${scrubSecrets(text, loaded.secrets)}\n`);
  if (!loaded.state) {
    print(renderDiagnostics(loaded.diagnostics));
    print(`error plan_file_state_unusable: the saved plan ${path} was made from ${saved.file}, which cannot be loaded here\n    hint: run apply from the directory the plan was made in, with the same environment`);
    return { print };
  }
  try {
    const fresh = await freshPlan(loaded.state);
    const problem = verifySavedPlan(saved, loaded.state, fresh.catalogs, ENGINE_VERSION, fresh.plan, ENGINE_CONTENT);
    if (problem) {
      print(`error ${problem.code}: ${problem.message}\n    hint: ${problem.hint}`);
      return { print };
    }
    return { print, ...fresh };
  } catch (err) {
    if (!printKnownError(print, err)) throw err;
    return { print };
  }
}

/** Prints a ConnectionError or SavedPlanError as `error CODE: message` plus its hint; false for any other error. */
export function printKnownError(print: (text: string) => void, err: unknown): boolean {
  if (err instanceof SavedPlanError) {
    print(`error ${err.code}: ${err.message}\n    hint: ${err.hint}`);
    return true;
  }
  if (!(err instanceof ConnectionError)) return false;
  print(`error ${err.code}: ${err.message}\n    hint: ${err.hint}`);
  return true;
}
