/**
 * What an action's `execute` is given: the apply's connection to each
 * database it needs (by its name in the plan), the engine's calls, and the
 * schema copy (pg_dump, found in this process — never taken from a plan).
 * Types only: the executor provides them, so action modules stay free of I/O
 * imports and the planner may use their constructors.
 */
import type pg from 'pg';
import type * as Engine from '../engine/index.js';

/** The engine calls actions make (idempotent engine functions). */
export type EngineCalls = Pick<
  typeof Engine,
  | 'installEngine'
  | 'createQueue'
  | 'createBranchQueue'
  | 'changeProvider'
  | 'configureQueue'
  | 'addTable'
  | 'addTables'
  | 'addSequence'
  | 'subscribe'
  | 'addSubscriberTable'
  | 'removeSubscriberTable'
  | 'removeSequence'
  | 'unregisterConsumer'
  | 'removeTable'
>;

/** A schema copy to run: create `tables` (and what they need) on `database` from `providerDatabase`'s definitions. */
export interface SchemaCopyRequest {
  actionId: string;
  node: string;
  providerDatabase: string;
  database: string;
  tables: Array<{ schema: string; table: string }>;
  mode: 'tables' | 'all';
}

export interface ActionContext {
  /** The apply's connection (holding its lock) to a database the action named in `databases()`. */
  db(database: string): pg.Client;
  engine: EngineCalls;
  copySchema(request: SchemaCopyRequest): Promise<void>;
}
