/**
 * Loading a desired-state file for the workflow: the trusted state, its
 * warnings, the passwords it holds (handed to `onSecrets` as soon as they are
 * known, also when the file does not load, so a caller can scrub them from
 * what it prints), and where each dotted path of it is. A file with an error
 * throws a DiagnosticError carrying every problem.
 */
import { loadDesiredState, type DesiredState } from '../config/index.js';
import { DiagnosticError, type Diagnostic, type SourcePosition } from '../kernel/index.js';

export interface WorkflowOptions {
  /** The environment `${VAR}` references are read from (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** Called with every password the file gives, before anything is printed or thrown. */
  onSecrets?: (secrets: string[]) => void;
}

export interface LoadedFile {
  file: string;
  state: DesiredState;
  /** The file's warnings (it has no errors). */
  diagnostics: Diagnostic[];
  secrets: string[];
  /** Where a dotted path of the document (`queues.shop.tables.entries`) is, when the file has it. */
  locate: (path: string) => SourcePosition | undefined;
}

/** Loads `file`; throws a DiagnosticError with every problem when it has an error. */
export async function loadFile(file: string, options: WorkflowOptions = {}): Promise<LoadedFile> {
  const loaded = await loadDesiredState(file, options.env ?? process.env);
  options.onSecrets?.(loaded.secrets);
  if (!loaded.state) throw new DiagnosticError(loaded.diagnostics);
  return { file, state: loaded.state, diagnostics: loaded.diagnostics, secrets: loaded.secrets, locate: loaded.locate ?? (() => undefined) };
}
