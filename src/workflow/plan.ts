/**
 * Making a plan: read every database's catalog, and plan — the one way a
 * plan is made, for `plan`, `apply FILE`, `apply PLANFILE` and the demo. With
 * `prepare.schema: copy` a first plan says which schema copies are needed;
 * each is then tried on its subscriber (a dry run, rolled back) and the plan
 * made again with what the dry runs found — the planner itself stays free of
 * I/O. Checks that name a path of the file get its position.
 */
import { introspectDatabases, type NodeCatalog } from '../catalog/index.js';
import type { DesiredState } from '../config/index.js';
import { ENGINE_CONTENT, ENGINE_VERSION } from '../engine/index.js';
import { dumpArchive, findPgDump, PgDumpError, prepareSchemaCopy, releaseArchive, type ExecutorTools, type PreparedSchemaCopy, type SchemaArchive } from '../executor/index.js';
import type { SourcePosition } from '../kernel/index.js';
import { buildPlan, replicatedTables, type PgDumpTool, type Plan, type SchemaCopyFindings } from '../planner/index.js';
import { loadFile, type LoadedFile, type WorkflowOptions } from './load.js';

export interface Planned {
  state: DesiredState;
  plan: Plan;
  catalogs: Record<string, NodeCatalog>;
  /** The tools found here that the plan was made with, and the schema copies it tried; apply runs these, never anything from a plan file. */
  tools: ExecutorTools;
}

/** Loads `file` (or takes it loaded) and plans against the live databases. */
export async function planFile(file: string | LoadedFile, options: WorkflowOptions = {}): Promise<Planned & { loaded: LoadedFile }> {
  const loaded = typeof file === 'string' ? await loadFile(file, options) : file;
  return { loaded, ...(await planState(loaded.state, loaded.locate)) };
}

/** Reads the catalogs of `state`'s databases and plans (with the schema copies' dry runs); `locate` gives checks their position. */
export async function planState(state: DesiredState, locate?: (path: string) => SourcePosition | undefined): Promise<Planned> {
  const catalogs = await introspectDatabases(state.databases);
  const pgDump: PgDumpTool | null = state.prepare.schema === 'copy' ? await findPgDump() : null;
  const input = { state, catalogs, engineVersion: ENGINE_VERSION, engineContent: ENGINE_CONTENT, tools: { pgDump } };
  const first = buildPlan(input);
  const copies = pgDump ? first.actions.filter((a) => a.kind === 'copy_schema') : [];
  if (!copies.length) return { state, catalogs, tools: { pgDump }, plan: withPositions(first, locate) };
  const { findings, prepared } = await trySchemaCopies(state, catalogs, first, pgDump!);
  return { state, catalogs, tools: { pgDump, schemaCopies: prepared }, plan: withPositions(buildPlan({ ...input, schemaCopies: findings }), locate) };
}

/** The plan with each check that names a path of the file placed at it. */
function withPositions(plan: Plan, locate?: (path: string) => SourcePosition | undefined): Plan {
  if (!locate) return plan;
  return {
    ...plan,
    checks: plan.checks.map((c) => {
      if (c.position || !c.path) return c;
      const position = locate(c.path);
      return position ? { ...c, position } : c;
    }),
  };
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

