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
import { dumpArchive, findPgDump, PgDumpError, prepareSchemaCopy, releaseArchive, type ExecutorTools, type PreparedSchemaCopy, type SchemaArchive } from '../../executor/index.js';
import { scrubSecrets } from '../../kernel/index.js';
import {
  SAVED_PLAN_FORMAT,
  SAVED_PLAN_VERSION,
  buildPlan,
  makeSavedPlan,
  replicatedTables,
  verifySavedPlan,
  type PgDumpTool,
  type Plan,
  type SavedPlan,
  type SchemaCopyFindings,
} from '../../planner/index.js';
import { renderDiagnostics } from '../../render/index.js';
import { guardOutput } from './output-guard.js';

export interface PlannedFile {
  /** Prints a line with every known password of the file scrubbed. */
  print: (text: string) => void;
  /** Absent when the file is invalid or a database could not be read (the reason is printed). */
  state?: DesiredState;
  plan?: Plan;
  catalogs?: Record<string, NodeCatalog>;
  /** The tools found here that the plan was made with, and the schema copies it tried; apply runs these, never anything from a plan file. */
  tools?: ExecutorTools;
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

/**
 * Reads the catalogs and plans: the one way a plan is made, for `plan`,
 * `apply FILE` and `apply PLANFILE` alike. With `prepare.schema: copy` a
 * first plan says which schema copies are needed; each is then tried on its
 * subscriber (a dry run, rolled back) and the plan made again with what the
 * dry runs found — the planner itself stays free of I/O.
 */
async function freshPlan(state: DesiredState): Promise<Required<Omit<PlannedFile, 'print'>>> {
  const catalogs = await introspectDatabases(state.databases);
  const pgDump: PgDumpTool | null = state.prepare.schema === 'copy' ? await findPgDump() : null;
  const input = { state, catalogs, engineVersion: ENGINE_VERSION, engineContent: ENGINE_CONTENT, tools: { pgDump } };
  const first = buildPlan(input);
  const copies = pgDump ? first.actions.filter((a) => a.kind === 'copy_schema') : [];
  if (!copies.length) return { state, catalogs, tools: { pgDump }, plan: first };
  const { findings, prepared } = await trySchemaCopies(state, catalogs, first, pgDump!);
  return { state, catalogs, tools: { pgDump, schemaCopies: prepared }, plan: buildPlan({ ...input, schemaCopies: findings }) };
}

/** Dry runs of the plan's copy_schema actions (one pg_dump per provider database). */
async function trySchemaCopies(state: DesiredState, catalogs: Record<string, NodeCatalog>, plan: Plan, pgDump: PgDumpTool): Promise<{ findings: Record<string, SchemaCopyFindings>; prepared: Map<string, PreparedSchemaCopy> }> {
  const findings: Record<string, SchemaCopyFindings> = {};
  const prepared = new Map<string, PreparedSchemaCopy>();
  const archives = new Map<string, SchemaArchive | Error>();
  const roles = plan.actions.filter((a) => a.kind === 'create_role');
  try {
    for (const action of plan.actions.filter((a) => a.kind === 'copy_schema')) {
      const queue = state.queues.find((q) => q.name === action.queue)!;
      const rootDb = queue.nodes.find((n) => n.type === 'root')!.database;
      const provider = state.databases.find((d) => d.name === rootDb)!;
      const subscriber = state.databases.find((d) => d.name === action.database)!;
      const dumpFailed = (err: Error): SchemaCopyFindings => ({
        objects: [],
        problems: [{ code: 'schema_copy_dump_failed', object: `database ${rootDb}`, message: `the schema of database "${rootDb}" cannot be read for node "${action.node}": ${err.message}`, hint: "the provider's role must be able to read every object's definition (pg_dump --schema-only); install the full client tools (pg_dump with pg_restore)" }],
      });
      if (!archives.has(rootDb)) archives.set(rootDb, await dumpArchive(pgDump, provider.connection).catch((err: Error) => err));
      const archive = archives.get(rootDb)!;
      if (archive instanceof Error) {
        if (!(archive instanceof PgDumpError)) throw archive;
        findings[action.id] = dumpFailed(archive);
        continue;
      }
      const selected = replicatedTables(queue, catalogs[rootDb]!).map((t) => ({ schema: t.schema, table: t.name }));
      const copy = await prepareSchemaCopy(archive, {
        node: action.node,
        provider: provider.connection,
        subscriber: subscriber.connection,
        tables: action.params.tables as Array<{ schema: string; table: string }>,
        selected,
        mode: state.prepare.schemaObjects,
        roles: roles.filter((r) => r.database === action.database).map((r) => r.object!),
      }).catch((err: Error) => {
        if (err instanceof PgDumpError) return err;
        throw err;
      });
      if (copy instanceof PgDumpError) {
        findings[action.id] = dumpFailed(copy);
        continue;
      }
      prepared.set(action.id, copy);
      findings[action.id] = { objects: copy.objects, problems: copy.problems };
    }
  } finally {
    for (const a of archives.values()) if (!(a instanceof Error)) await releaseArchive(a);
  }
  return { findings, prepared };
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
