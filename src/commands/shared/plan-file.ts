/**
 * What `plan` and `apply` share: load the file, read every database's
 * catalog, build the plan — printing (password-free) why when one of these
 * fails — and print a connection error with its fix.
 */
import { introspectDatabases } from '../../catalog/index.js';
import { loadDesiredState, type DesiredState } from '../../config/index.js';
import { ConnectionError } from '../../db/index.js';
import { ENGINE_VERSION } from '../../engine/index.js';
import { scrubSecrets } from '../../kernel/index.js';
import { buildPlan, type Plan } from '../../planner/index.js';
import { renderDiagnostics } from '../../render/index.js';

export interface PlannedFile {
  /** Prints a line with every known password of the file scrubbed. */
  print: (text: string) => void;
  /** Absent when the file is invalid or a database could not be read (the reason is printed). */
  state?: DesiredState;
  plan?: Plan;
}

export async function planFile(file: string): Promise<PlannedFile> {
  const loaded = await loadDesiredState(file);
  const print = (text: string) => process.stdout.write(`${scrubSecrets(text, loaded.secrets)}\n`);
  if (!loaded.state) {
    print(renderDiagnostics(loaded.diagnostics));
    return { print };
  }
  try {
    const catalogs = await introspectDatabases(loaded.state.databases);
    return { print, state: loaded.state, plan: buildPlan({ state: loaded.state, catalogs, engineVersion: ENGINE_VERSION }) };
  } catch (err) {
    if (!printConnectionError(print, err)) throw err;
    return { print };
  }
}

/** Prints a ConnectionError as `error CODE: message` plus its hint; false for any other error. */
export function printConnectionError(print: (text: string) => void, err: unknown): boolean {
  if (!(err instanceof ConnectionError)) return false;
  print(`error ${err.code}: ${err.message}\n    hint: ${err.hint}`);
  return true;
}
