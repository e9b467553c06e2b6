/**
 * What the planner is given: the desired state, the catalog of every
 * database, the engine this pgconvey installs, the local tools found, and
 * what the caller's dry runs of schema copies found. Plain data.
 */
import type { NodeCatalog } from '../catalog/model.js';
import type { DesiredState } from '../config/index.js';

export interface PlanInput {
  state: DesiredState;
  /** Catalog of each database, by its name in the desired state. */
  catalogs: Readonly<Record<string, NodeCatalog>>;
  /** The engine version (newest migration) this pgconvey installs. */
  engineVersion: number;
  /** The content version (sha256 of the engine SQL) it installs; when given, an engine of the same migration with other content is upgraded too. */
  engineContent?: string;
  /** Local tools found by the caller; `prepare.schema: copy` needs pg_dump. */
  tools?: { pgDump: PgDumpTool | null };
  /**
   * What the caller's dry run of each `copy_schema` found (by action id): the
   * objects it creates and every one it cannot. Absent: the action is planned
   * without them (the caller plans once to learn which copies to try).
   */
  schemaCopies?: Readonly<Record<string, SchemaCopyFindings>>;
}

export interface SchemaCopyFindings {
  /** The objects the copy creates, in order: pg_dump's entry type (`TABLE`, `FK CONSTRAINT`…) and the object's name. */
  objects: Array<{ type: string; name: string }>;
  /** Each object the copy cannot create, and why. */
  problems: SchemaCopyProblem[];
}

export interface SchemaCopyProblem {
  code: string;
  /** The object, e.g. `EXTENSION postgis`. */
  object: string;
  message: string;
  hint: string;
}

export interface PgDumpTool {
  path: string;
  major: number;
  version: string;
}
