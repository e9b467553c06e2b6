/**
 * Partitioned tables in the planner (pure): a partitioned table selected by
 * the file replicates as a whole — its partitions at every level are captured
 * with it, under its name — so this module answers, from one catalog, which
 * tables form its tree, which partitions its capture does not cover yet
 * (attached or created since the last apply), and which tables carry its
 * triggers although they left the tree (detached). Also the inheritance
 * children (INHERITS) of a table, which are ordinary tables of their own.
 */
import type { NodeCatalog, TableInfo } from '../catalog/model.js';
import { displayName, nameKey, sameName } from '../kernel/index.js';
import { treeIndex } from './catalog-index.js';

/** Every partition under `table` at every level (not the table itself), by name. */
export function partitionsOf(catalog: NodeCatalog, table: Pick<TableInfo, 'schema' | 'name'>): TableInfo[] {
  const { partitions } = treeIndex(catalog);
  const out: TableInfo[] = [];
  const todo: Array<Pick<TableInfo, 'schema' | 'name'>> = [table];
  while (todo.length) {
    for (const t of partitions.get(nameKey(todo.shift()!)) ?? []) {
      out.push(t);
      todo.push(t);
    }
  }
  return out.sort((a, b) => displayName(a).localeCompare(displayName(b)));
}

/** Whether `t` is a partition of `parent` (directly). */
export function isPartitionOf(t: TableInfo, parent: Pick<TableInfo, 'schema' | 'name'>): boolean {
  return t.partitionOf !== null && sameName(t.partitionOf, parent);
}

/** The ancestors of a partition in the catalog, nearest first. */
export function ancestorsOf(catalog: NodeCatalog, table: TableInfo): TableInfo[] {
  const { byName } = treeIndex(catalog);
  const parentOf = (t: TableInfo) => (t.partitionOf ? byName.get(nameKey(t.partitionOf)) : undefined);
  const out: TableInfo[] = [];
  for (let up = parentOf(table); up && !out.some((t) => sameName(t, up!)); up = parentOf(up)) out.push(up);
  return out;
}

/** The tables that inherit from `table` with INHERITS (its inheritance children), in the order of their display names. */
export function inheritanceChildrenOf(catalog: NodeCatalog, table: Pick<TableInfo, 'schema' | 'name'>): TableInfo[] {
  return [...(treeIndex(catalog).inheritors.get(nameKey(table)) ?? [])];
}

/** The names of the capture functions of captured table `id` (see add_table in the engine). */
export function captureFunctions(id: number): string[] {
  return [`capture_${id}`, `capture_truncate_${id}`, `capture_truncate_rows_${id}`];
}

export interface PartitionCapture {
  /** Partitions whose capture is not in place (attached or created since the table was captured), by display name. */
  uncaptured: string[];
  /** Tables outside the tree that still carry the table's capture triggers: detached since. */
  detached: string[];
  /** Capture triggers on partitions that do not fire for ordinary sessions ('D' disabled, 'R' replica only). */
  disabled: Array<{ table: string; trigger: string; mode: string }>;
}

/**
 * How the capture of partitioned table `table` (captured table `id`, queue
 * `queueId`) stands on the root: every table of the tree needs the TRUNCATE
 * pair (`pgconvey_truncate_<q>` AFTER, `pgconvey_truncate_rows_<q>` BEFORE,
 * never cloned by PostgreSQL), and on PostgreSQL 10 — no row triggers on
 * partitioned tables — every leaf its own row trigger; from 11 the parent's
 * row trigger is cloned onto every partition by the server.
 */
export function partitionCapture(root: NodeCatalog, table: TableInfo, queueId: number, id: number | undefined): PartitionCapture {
  const tree = partitionsOf(root, table);
  const perLeafRows = root.serverVersionNum < 110000;
  const wants = (t: TableInfo): Record<string, string> => ({
    [`pgconvey_truncate_${queueId}`]: `capture_truncate_${id}`,
    [`pgconvey_truncate_rows_${queueId}`]: `capture_truncate_rows_${id}`,
    ...(perLeafRows && t.kind === 'r' ? { [`pgconvey_capture_${queueId}`]: `capture_${id}` } : {}),
  });
  const uncaptured = tree
    .filter((t) => Object.entries(wants(t)).some(([trigger, fn]) => t.triggerFunctions?.[trigger] === undefined || (id !== undefined && t.triggerFunctions[trigger] !== fn)))
    .map(displayName);
  const inTree = new Set([nameKey(table), ...tree.map(nameKey)]);
  const mine = id === undefined ? [] : captureFunctions(id);
  const detached = root.tables
    .filter((t) => !inTree.has(nameKey(t)) && Object.values(t.triggerFunctions ?? {}).some((fn) => mine.includes(fn)))
    .map(displayName)
    .sort();
  const disabled = tree.flatMap((t) =>
    Object.entries(t.triggerModes ?? {})
      .filter(([trigger, mode]) => (mode === 'D' || mode === 'R') && (trigger in wants(t) || trigger === `pgconvey_capture_${queueId}`))
      .map(([trigger, mode]) => ({ table: displayName(t), trigger, mode })),
  );
  return { uncaptured, detached, disabled };
}
