/**
 * Plan data: actions with stable ids (part of the JSON contract), the node
 * and database they touch, why they are needed, what they depend on, and
 * whether they destroy something. The order of ACTION_KINDS is the order in
 * which a plan runs them.
 */

export const ACTION_KINDS = [
  'create_role',
  'grant_role',
  'copy_schema',
  'install_engine',
  'upgrade_engine',
  'create_queue',
  'configure_queue',
  'capture_table',
  'capture_sequence',
  'subscribe',
  'add_subscriber_table',
  'remove_subscriber_table',
  'remove_sequence',
  'remove_consumer',
  'remove_capture',
] as const;

export type ActionKind = (typeof ACTION_KINDS)[number];

/** How an action changes the world; renders as `+`, `~`, `-`. */
export type Change = 'create' | 'update' | 'delete';

export interface Action {
  /** `kind:node:object`, e.g. `capture_table:old_root:public.orders`. Stable across runs. */
  id: string;
  kind: ActionKind;
  change: Change;
  /** The node of the desired state the action belongs to. */
  node: string;
  /** The database it runs on. */
  database: string;
  queue: string | null;
  /** The table or sequence it is about, `schema.name`, or null. */
  object: string | null;
  /** Why the plan contains it, for people; never used to decide anything. */
  reason: string;
  /** Ids of actions that must run before it. */
  dependsOn: string[];
  /** Stops replicating something, or drops something. */
  destructive: boolean;
  /** What the executor needs (schema, table, key columns…). */
  params: Record<string, unknown>;
}
