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

const qualified = (t: Pick<TableInfo, 'schema' | 'name'>) => `${t.schema}.${t.name}`;

/** Every partition under `table` at every level (not the table itself), by name. */
export function partitionsOf(catalog: NodeCatalog, table: Pick<TableInfo, 'schema' | 'name'>): TableInfo[] {
  const out: TableInfo[] = [];
  const todo = [qualified(table)];
  while (todo.length) {
    const parent = todo.shift()!;
    for (const t of catalog.tables) {
      if (t.partitionOf === parent) {
        out.push(t);
        todo.push(qualified(t));
      }
    }
  }
  return out.sort((a, b) => qualified(a).localeCompare(qualified(b)));
}

/** The ancestors of a partition, nearest first, by name. */
export function ancestorsOf(catalog: NodeCatalog, table: TableInfo): string[] {
  const byName = new Map(catalog.tables.map((t) => [qualified(t), t]));
  const out: string[] = [];
  for (let up = table.partitionOf; up && !out.includes(up); up = byName.get(up)?.partitionOf ?? null) out.push(up);
  return out;
}

/** The tables that inherit from `table` with INHERITS (its inheritance children), by name. */
export function inheritanceChildrenOf(catalog: NodeCatalog, table: Pick<TableInfo, 'schema' | 'name'>): string[] {
  const name = qualified(table);
  return catalog.tables.filter((t) => t.inherits?.includes(name)).map(qualified).sort();
}

/** The names of the capture functions of captured table `id` (see add_table in the engine). */
export function captureFunctions(id: number): string[] {
  return [`capture_${id}`, `capture_truncate_${id}`, `capture_truncate_rows_${id}`];
}

export interface PartitionCapture {
  /** Partitions whose capture is not in place (attached or created since the table was captured). */
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
    .map(qualified);
  const inTree = new Set([qualified(table), ...tree.map(qualified)]);
  const mine = id === undefined ? [] : captureFunctions(id);
  const detached = root.tables
    .filter((t) => !inTree.has(qualified(t)) && Object.values(t.triggerFunctions ?? {}).some((fn) => mine.includes(fn)))
    .map(qualified)
    .sort();
  const disabled = tree.flatMap((t) =>
    Object.entries(t.triggerModes ?? {})
      .filter(([trigger, mode]) => (mode === 'D' || mode === 'R') && (trigger in wants(t) || trigger === `pgconvey_capture_${queueId}`))
      .map(([trigger, mode]) => ({ table: qualified(t), trigger, mode })),
  );
  return { uncaptured, detached, disabled };
}
