/**
 * Resync: copy tables again from scratch on a subscriber, while the other
 * tables go on replicating. Each named table goes back to `pending`; the
 * running worker (pgconvey run) copies it anew — emptying the subscriber's
 * table and loading it in one transaction — and merges it by snapshot.
 * Checks every name and subscription before changing anything.
 */
import type pg from 'pg';
import { displayQualified, type DesiredState, type NodeSpec } from '../config/index.js';
import { connect } from '../db/index.js';
import { readTableStates, switchedOverAt, resyncTable, type TableState } from '../engine/index.js';
import { closest, PgconveyError } from '../kernel/index.js';
import { parseTableName } from './table-name.js';

export class ResyncError extends PgconveyError {
  constructor(code: string, message: string, hint: string) {
    super(code, message, hint);
  }
}

export interface ResyncTarget {
  queue: string;
  node: string;
  table: string;
  /** The state the table was in before. */
  previousState: TableState;
}

/** Marks the tables for a new copy on every subscriber that has them (or only on `node`); returns what it marked. */
export async function resyncTables(state: DesiredState, names: string[], options: { node?: string; queue?: string } = {}): Promise<ResyncTarget[]> {
  if (!names.length) throw new ResyncError('no_tables_named', 'name at least one table to copy again', 'e.g. pgconvey resync FILE public.orders');
  const wanted = names.map((n) => parseTableName(n));
  const leaves: Array<{ queue: string; leaf: NodeSpec }> = state.queues
    .filter((q) => !options.queue || q.name === options.queue)
    .flatMap((q) => q.nodes.filter((n) => n.type === 'leaf' && (!options.node || n.name === options.node)).map((leaf) => ({ queue: q.name, leaf })));
  if (!leaves.length) {
    const nodes = [...new Set(state.queues.flatMap((q) => q.nodes.filter((n) => n.type === 'leaf').map((n) => n.name)))];
    const guess = options.node ? closest(options.node, nodes) : undefined;
    throw new ResyncError('unknown_node', `no subscriber ${options.node ? `"${options.node}" ` : ''}in ${state.file}${options.queue ? ` for queue "${options.queue}"` : ''}`, `${guess ? `did you mean "${guess}"? ` : ''}subscribers: ${nodes.join(', ') || 'none'}`);
  }
  const clients = new Map<string, pg.Client>();
  try {
    const targets: Array<ResyncTarget & { schema: string; name: string; database: string }> = [];
    for (const { queue, leaf } of leaves) {
      if (!clients.has(leaf.database)) clients.set(leaf.database, await connect(state.databases.find((d) => d.name === leaf.database)!.connection, 'resync'));
      const switchedAt = await switchedOverAt(clients.get(leaf.database)!, queue, leaf.name);
      if (switchedAt) {
        throw new ResyncError(
          'resync_after_switchover',
          `node "${leaf.name}" took over writes from its provider (switchover at ${switchedAt.toISOString()}): copying from the old node would overwrite newer data`,
          'switch back first (pgconvey switchover FILE --to <root>), or repair the table on the old node instead',
        );
      }
      const rows = await readTableStates(clients.get(leaf.database)!, queue, leaf.name);
      for (const w of wanted) {
        const row = rows.find((r) => r.table.schema === w.schema && r.table.name === w.name);
        if (row) targets.push({ queue, node: leaf.name, table: displayQualified(w.schema, w.name), previousState: row.state, schema: w.schema, name: w.name, database: leaf.database });
      }
    }
    for (const w of wanted) {
      if (targets.some((t) => t.schema === w.schema && t.name === w.name)) continue;
      throw new ResyncError('table_not_replicated', `table ${displayQualified(w.schema, w.name)} is not replicated to ${options.node ? `node "${options.node}"` : 'any subscriber of the file'}`, 'name a replicated table (pgconvey status lists them)');
    }
    for (const t of targets) await resyncTable(clients.get(t.database)!, t.queue, t.node, t.schema, t.name);
    return targets.map(({ queue, node, table, previousState }) => ({ queue, node, table, previousState }));
  } finally {
    await Promise.all([...clients.values()].map((c) => c.end().catch(() => undefined)));
  }
}
