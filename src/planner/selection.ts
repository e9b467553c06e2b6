/**
 * The planner's selection step: which of the root's tables and sequences a
 * queue replicates (entries, include, exclude — exact names compared as
 * `{schema, name}`, globs matched), each table with its key, and the checks
 * of what cannot be replicated (no key, a deferrable key, a partition
 * covered by its parent, inheritance children left out). Pure.
 */
import type { NodeCatalog, TableInfo } from '../catalog/model.js';
import type { QueueSpec, Selection } from '../config/index.js';
import { matchesPattern } from '../config/names.js';
import { displayName, sameName, type QualifiedName } from '../kernel/index.js';
import type { AddCheck } from './builder.js';
import { ancestorsOf, inheritanceChildrenOf } from './partitions.js';

export function selected(selection: Selection<unknown>, n: QualifiedName): boolean {
  const listed = selection.entries.some((e) => sameName(e.pattern.exact, n));
  if (listed) return true;
  return selection.include.some((p) => matchesPattern(p, n.schema, n.name)) && !selection.exclude.some((p) => matchesPattern(p, n.schema, n.name));
}

/** The root's tables a queue replicates (as the plan selects them), for callers that prepare actions. */
export function replicatedTables(queue: QueueSpec, root: NodeCatalog): TableInfo[] {
  return selectTables(queue, root, () => undefined).map((t) => t.table);
}

export interface SelectedTable {
  table: TableInfo;
  key: string[];
}

/** The root's tables the queue selects, each with its key; reports what cannot be replicated. */
export function selectTables(queue: QueueSpec, root: NodeCatalog, check: AddCheck): SelectedTable[] {
  const path = `queues.${queue.name}.tables`;
  const out: SelectedTable[] = [];
  for (const entry of queue.tables.entries) {
    if (!root.tables.some((t) => sameName(t, entry.pattern.exact))) {
      check('error', 'table_not_found', `table ${entry.pattern.text} listed under entries does not exist on the root`, 'check the name (unquoted names are lower case), or create the table', `${path}.entries`);
    }
  }
  for (const pattern of queue.tables.include) {
    if (!root.tables.some((t) => matchesPattern(pattern, t.schema, t.name))) {
      check('warning', 'include_matches_nothing', `include "${pattern.text}" matches no table on the root`, 'check the pattern; it is resolved again at every plan', `${path}.include`);
    }
  }
  const byName = [...root.tables].sort((a, b) => a.schema.localeCompare(b.schema) || a.name.localeCompare(b.name));
  const isSelected = (t: TableInfo) => selected(queue.tables, t);
  for (const table of byName) {
    if (!isSelected(table)) continue;
    const name = displayName(table);
    const entry = queue.tables.entries.find((e) => sameName(e.pattern.exact, table));
    // A partition of a selected partitioned table replicates as part of it (the highest selected ancestor):
    // captured once, under the ancestor's name. Listing it too is redundant, and said so.
    const coveringTable = ancestorsOf(root, table).filter(isSelected).pop();
    if (coveringTable) {
      const covering = displayName(coveringTable);
      if (entry) {
        check(
          'warning',
          'partition_covered_by_parent',
          `table ${name} is listed under entries, but it is a partition of ${covering}, which is selected too: it replicates as part of ${covering}`,
          `remove ${name} from entries (or exclude ${covering} to replicate ${name} alone)`,
          `${path}.entries`,
        );
      }
      continue;
    }
    // Inheritance (INHERITS) children are ordinary tables with rows of their own: each replicates only when selected.
    const children = inheritanceChildrenOf(root, table)
      .filter((c) => !isSelected(c))
      .map(displayName);
    if (children.length) {
      check(
        'warning',
        'inheritance_children_not_selected',
        `table ${name} has inheritance children ${children.join(', ')} that are not selected: only the rows of ${name} itself replicate (as with ONLY), theirs do not`,
        'select the children too (include or entries) if their rows must move, or exclude them knowingly',
        path,
      );
    }
    const givenKey = entry?.options.key;
    if (givenKey) {
      const bad = givenKey.filter((k) => !table.columns.some((c) => c.name === k && c.notNull));
      if (bad.length) {
        check('error', 'invalid_key_columns', `key column(s) ${bad.join(', ')} of ${name} do not exist or may be NULL`, 'name NOT NULL columns that identify a row', `${path}.entries`);
        continue;
      }
      const sameSet = (cols: string[]) => [...cols].sort().join('\u0000') === [...givenKey].sort().join('\u0000');
      if ((table.deferrableUnique ?? []).some(sameSet) && !table.uniqueNotNull.some(sameSet) && !sameSet(table.primaryKey)) {
        check(
          'error',
          'table_key_deferrable',
          `the key (${givenKey.join(', ')}) of ${name} is kept unique only by a DEFERRABLE constraint, which pgconvey cannot replicate exactly`,
          'make the constraint NOT DEFERRABLE, or name key columns that stay unique at every statement',
          `${path}.entries`,
        );
        continue;
      }
      out.push({ table, key: givenKey });
    } else if (table.primaryKey.length) {
      out.push({ table, key: table.primaryKey });
    } else if (table.deferrablePrimaryKey) {
      // Inside one transaction a deferrable key may be held by two rows at once (UPDATE t SET id = 4 - id):
      // the events of one key then no longer tell one row's story, and no per-key net effect is exact.
      check(
        'error',
        'table_key_deferrable',
        `table ${name} has a DEFERRABLE primary key (${table.deferrablePrimaryKey.join(', ')}), which pgconvey cannot replicate exactly`,
        'make the key immediate on the provider (ALTER TABLE … ALTER CONSTRAINT … NOT DEFERRABLE), or list the table under entries with key: [...] naming NOT NULL columns that stay unique at every statement',
        path,
      );
    } else {
      const candidate = table.uniqueNotNull[0];
      check(
        'error',
        'table_without_key',
        `table ${name} has no primary key`,
        candidate
          ? `add a primary key, or list it under entries with key: [${candidate.join(', ')}] (a unique NOT NULL index has these columns)`
          : `add a primary key, or list it under entries with key: [...] naming NOT NULL columns that identify a row`,
        path,
      );
    }
  }
  return out;
}
