/**
 * The planner's capture step on a queue's root: capture each selected table
 * not captured yet, again when its key, columns, capture trigger or
 * partitions changed (with the checks of its partitions), and stop capturing
 * what the file no longer selects. Tables are keyed by `nameKey`. Pure.
 */
import { proposeCaptureTable, proposeRemoveCapture } from '../actions/index.js';
import type { EngineQueueInfo, NodeCatalog } from '../catalog/model.js';
import type { NodeSpec, QueueSpec } from '../config/index.js';
import { displayName, nameKey } from '../kernel/index.js';
import type { PlanBuilder } from './builder.js';
import { captureTriggerCheck } from './checks.js';
import { partitionCapture } from './partitions.js';
import type { SelectedTable } from './selection.js';

/** Returns the capture action id of each table it captures (again), by `nameKey`. */
export function planCaptures(queue: QueueSpec, root: NodeSpec, rootCatalog: NodeCatalog, queueState: EngineQueueInfo | undefined, tables: SelectedTable[], queueReady: string[], plan: PlanBuilder): Map<string, string> {
  const site = { node: root.name, database: root.database };
  const check = plan.check;
  const captured = new Map((queueState?.tables ?? []).map((t) => [nameKey(t), t]));
  const captureIds = new Map<string, string>();
  for (const { table, key } of tables) {
    const name = displayName(table);
    const current = captured.get(nameKey(table));
    const shipped = table.columns.filter((c) => c.generated === '').map((c) => c.name);
    const keyChanged = current && current.keyColumns.join(',') !== key.join(',');
    const columnsChanged = current && current.columns.join(',') !== shipped.join(',');
    const triggerMissing = current ? captureTriggerCheck(queue.name, queueState, table, check, rootCatalog.serverVersionNum) : false;
    // A partitioned table: partitions attached or created since its capture, and tables detached from it.
    const parts = table.kind === 'p' && current && queueState?.id !== undefined ? partitionCapture(rootCatalog, table, queueState.id, current.id) : { uncaptured: [], detached: [], disabled: [] };
    for (const d of parts.disabled) {
      check(
        'error',
        'capture_trigger_disabled',
        `the capture trigger ${d.trigger} of partition ${d.table} of ${name} (queue "${queue.name}") is ${d.mode === 'D' ? 'disabled' : 'enabled for replica sessions only'}: writes to the partition are not captured`,
        `ALTER TABLE ${d.table} ENABLE TRIGGER ${d.trigger}; then check ${name} with \`pgconvey compare\` (and \`pgconvey resync\` it if it differs)`,
        `queues.${queue.name}.tables`,
      );
    }
    for (const gone of parts.detached) {
      check(
        'warning',
        'partition_detached',
        `table ${gone} was a partition of ${name} (queue "${queue.name}") and is detached on the provider: its rows no longer belong to ${name} there, and pgconvey does not replicate DETACH`,
        `on each subscriber detach (or drop) the same partition of ${name}, or delete its rows from ${name}; then check with \`pgconvey compare\` (or \`pgconvey resync ${name}\`)`,
        `queues.${queue.name}.tables`,
      );
    }
    if (parts.uncaptured.length && rootCatalog.serverVersionNum < 110000) {
      check(
        'warning',
        'partition_captured_late',
        `partition(s) ${parts.uncaptured.join(', ')} of ${name} are not captured yet: on PostgreSQL ${rootCatalog.serverVersion} each partition needs its own capture trigger, so rows written to them before this apply are not replicated`,
        `apply this plan, then \`pgconvey resync ${name}\` if rows were written to them already (create partitions before rows arrive, and apply right after)`,
        `queues.${queue.name}.tables`,
      );
    }
    const partsChanged = parts.uncaptured.length > 0 || parts.detached.length > 0;
    if (current && !keyChanged && !columnsChanged && !triggerMissing && !partsChanged) continue;
    const reason = !current
      ? `it matches the queue's tables and is not captured yet`
      : triggerMissing
        ? 'its capture trigger is missing (dropped by hand?): add_table creates it again'
        : partsChanged && !keyChanged && !columnsChanged
          ? [
              ...(parts.uncaptured.length ? [`partition(s) ${parts.uncaptured.join(', ')} attached or created since it was captured`] : []),
              ...(parts.detached.length ? [`table(s) ${parts.detached.join(', ')} detached from it (their capture triggers go)`] : []),
            ].join('; ')
          : keyChanged
            ? `its key changed from (${current.keyColumns.join(', ')}) to (${key.join(', ')})`
            : `its columns changed from (${current.columns.join(', ')}) to (${shipped.join(', ')}) (ALTER TABLE on the provider)`;
    captureIds.set(nameKey(table), plan.add(proposeCaptureTable({ root: site, queue: queue.name, table, keyColumns: key, change: current ? 'update' : 'create', reason, dependsOn: queueReady })));
  }
  const selectedNames = new Set(tables.map((t) => nameKey(t.table)));
  for (const [key, t] of captured) {
    if (selectedNames.has(key)) continue;
    plan.add(proposeRemoveCapture({ root: site, queue: queue.name, table: t }));
  }
  return captureIds;
}
