/**
 * Lookups over one catalog's tables by name (pure): a table by its
 * qualified name, the direct partitions and the inheritance children of a
 * table — made once per catalog tables array, so planning many tables does
 * not scan the catalog once per table. The planner treats catalogs as
 * read-only data; an index is keyed by the very array it was made from.
 */
import type { NodeCatalog, TableInfo } from '../catalog/model.js';
import { displayName, nameKey, type QualifiedName } from '../kernel/index.js';

/** Lookups over one catalog's tables, made once per tables array (the planner treats catalogs as read-only data). */
export interface TreeIndex {
  byName: Map<string, TableInfo>;
  /** Direct partitions by their parent's name key. */
  partitions: Map<string, TableInfo[]>;
  /** Inheritance children (INHERITS) by their parent's name key, in the order of their display names. */
  inheritors: Map<string, TableInfo[]>;
}

const indexes = new WeakMap<readonly TableInfo[], TreeIndex>();

export function treeIndex(catalog: Pick<NodeCatalog, 'tables'>): TreeIndex {
  let index = indexes.get(catalog.tables);
  if (index) return index;
  index = { byName: new Map(), partitions: new Map(), inheritors: new Map() };
  const push = (map: Map<string, TableInfo[]>, key: string, t: TableInfo) => {
    const list = map.get(key);
    if (list) list.push(t);
    else map.set(key, [t]);
  };
  for (const t of catalog.tables) {
    index.byName.set(nameKey(t), t);
    if (t.partitionOf) push(index.partitions, nameKey(t.partitionOf), t);
    for (const p of new Set((t.inherits ?? []).map(nameKey))) push(index.inheritors, p, t);
  }
  for (const list of index.inheritors.values()) {
    const named = list.map((t) => [displayName(t), t] as const).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    list.splice(0, list.length, ...named.map(([, t]) => t));
  }
  indexes.set(catalog.tables, index);
  return index;
}

/** The table of `catalog` named `n`, if there is one. */
export function tableNamed(catalog: Pick<NodeCatalog, 'tables'>, n: QualifiedName): TableInfo | undefined {
  return treeIndex(catalog).byName.get(nameKey(n));
}
