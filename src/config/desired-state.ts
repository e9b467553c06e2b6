/**
 * DesiredState: the validated, normalised content of a desired-state file —
 * plain data that the planner trusts. Durations are milliseconds, names are
 * parsed patterns, defaults are filled in. Built by `normalize.ts` only after
 * the file has no errors.
 */
import type { ConnectionSpec } from './connection.js';
import type { NamePattern } from './names.js';

export type NodeType = 'root' | 'branch' | 'leaf';
export type PrepareMode = 'copy' | 'check';

export interface DatabaseSpec {
  name: string;
  connection: ConnectionSpec;
  /** Printable, password-free: `user@host:port/dbname`. */
  display: string;
}

export interface NodeSpec {
  name: string;
  /** Name of a DatabaseSpec. */
  database: string;
  type: NodeType;
  /** Name of another node in the same queue; absent on the root. */
  provider?: string;
}

export interface TableOptions {
  /** Key columns for a table without a primary key. */
  key?: string[];
}

export interface SelectionEntry<O> {
  pattern: NamePattern & { exact: { schema: string; name: string } };
  options: O;
}

export interface Selection<O> {
  include: NamePattern[];
  exclude: NamePattern[];
  entries: SelectionEntry<O>[];
}

export interface DaemonSettings {
  ticker: { maxEvents: number; maxLagMs: number; idlePeriodMs: number; minIntervalMs: number };
  worker: { pollIntervalMs: number; retryDelayMs: number };
  copy: { parallel: number };
  maintenance: { intervalMs: number; rotationTransactions: number; tickRetentionMs: number };
}

export interface QueueSpec {
  name: string;
  /** In file order; the root is `nodes.find(n => n.type === 'root')`. */
  nodes: NodeSpec[];
  tables: Selection<TableOptions>;
  sequences: Selection<Record<string, never>>;
  /** The top-level settings with this queue's overrides applied. */
  daemons: DaemonSettings;
}

export interface DesiredState {
  /** The path the state was read from, as given. */
  file: string;
  databases: DatabaseSpec[];
  queues: QueueSpec[];
  /** schemaObjects: what `schema: copy` creates — `tables` (the missing tables and what they need) or `all` (every object of the provider missing there). */
  prepare: { roles: PrepareMode; schema: PrepareMode; schemaObjects: 'tables' | 'all' };
  daemons: DaemonSettings;
}

export const DEFAULT_DAEMON_SETTINGS: DaemonSettings = {
  ticker: { maxEvents: 500, maxLagMs: 100, idlePeriodMs: 30_000, minIntervalMs: 20 },
  worker: { pollIntervalMs: 50, retryDelayMs: 1000 },
  copy: { parallel: 2 },
  maintenance: { intervalMs: 5000, rotationTransactions: 100_000, tickRetentionMs: 60 * 60_000 },
};
