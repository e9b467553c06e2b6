/**
 * What every action is, whatever its kind: a record with a stable id
 * (`kind:node:subject`, part of the JSON contract), the node and database it
 * belongs to, why the plan has it, what must run before it, whether it
 * destroys something, and its kind's typed parameters — everything the
 * executor needs, so apply reads the plan and nothing else. Also the shape of
 * an action kind's module (its failure hint, the databases it needs, how it
 * runs, whether it may share a transaction or run in the background). Pure.
 */
import type { ActionContext } from './context.js';

/** How an action changes the world; renders as `+`, `~`, `-`. */
export type Change = 'create' | 'update' | 'delete';

/** One action of kind `K` with parameters `P` (see `ActionOf` in the registry for the plan's union). */
export interface ActionRecord<K extends string = string, P = unknown> {
  /** `kind:node:object`, e.g. `capture_table:old_root:public.orders`. Stable across runs. */
  id: string;
  kind: K;
  change: Change;
  /** The node of the desired state the action belongs to (`db:<database>` for what belongs to a database). */
  node: string;
  /** The database it runs on. */
  database: string;
  queue: string | null;
  /** What it is about, for people and its id (a table `displayName`, a role, a pin), or null. Never parsed back. */
  object: string | null;
  /** Why the plan contains it, for people; never used to decide anything. */
  reason: string;
  /** Ids of actions that must run before it. */
  dependsOn: string[];
  /** Stops replicating something, or drops something. */
  destructive: boolean;
  /** What the executor needs, typed per kind (schema, table, key columns, the provider's database…). */
  params: P;
}

/** An action kind: how it fails for people, which databases it needs, how it runs. */
export interface ActionModule<K extends string, P> {
  kind: K;
  /** What to do when an action of this kind fails (the cause is in the message). */
  hint: string;
  /** The databases it needs a connection to: its own, and any named in its params (e.g. the provider's). */
  databases(action: ActionRecord<K, P>): string[];
  /** Runs it; idempotent, re-checking its precondition where the SQL alone does not. */
  execute(action: ActionRecord<K, P>, ctx: ActionContext): Promise<void>;
  /**
   * It may share a transaction with its neighbours (src/executor/groups.ts): execute runs statements on
   * ctx.db(action.database) only, opens and ends no transaction itself, and is correct rolled back.
   */
  groupable?: boolean;
  /**
   * It runs beside the actions after it (src/executor/schedule.ts) once what it depends on is done: execute
   * uses none of the apply's connections but its own database's (the schema copy opens its own), and what
   * needs what it makes lists it in dependsOn or runs on its database — those wait for it.
   */
  background?: boolean;
  /**
   * Runs several actions of this kind (groupable, consecutive in a group, on one database) in as few engine
   * calls as it can, with the effect of running each with execute; all or nothing (the group runs them one
   * by one when it fails).
   */
  executeBatch?(actions: Array<ActionRecord<K, P>>, ctx: ActionContext): Promise<void>;
}

export function defineAction<K extends string, P>(module: ActionModule<K, P>): ActionModule<K, P> {
  return module;
}

/** Where an action belongs: a node, or a database (`db:<name>`). */
export interface ActionSite {
  node: string;
  database: string;
}

export interface ActionFields<P> {
  queue?: string | null;
  object?: string | null;
  reason: string;
  dependsOn?: string[];
  destructive?: boolean;
  params: P;
}

/** Builds an action with id `kind:node[:subject]` (the same fields, in the same order, as every plan so far). */
export function makeAction<K extends string, P>(kind: K, change: Change, site: ActionSite, subject: string | null, f: ActionFields<P>): ActionRecord<K, P> {
  return {
    id: `${kind}:${site.node}${subject ? `:${subject}` : ''}`,
    kind,
    change,
    node: site.node,
    database: site.database,
    queue: f.queue ?? null,
    object: f.object ?? null,
    dependsOn: f.dependsOn ?? [],
    destructive: f.destructive ?? false,
    params: f.params,
    reason: f.reason,
  };
}

/** The site of what belongs to a database rather than a node (the engine, roles). */
export function databaseSite(database: string): ActionSite {
  return { node: `db:${database}`, database };
}
