/**
 * The planner's checks of a root that propose no action: the capture
 * triggers of a captured table (disabled, replica-only, always, missing),
 * the capture role and materialized views (not replicated). Pure.
 */
import type { NodeCatalog, TableInfo } from '../catalog/model.js';
import type { NodeSpec, QueueSpec } from '../config/index.js';
import { displayName } from '../kernel/index.js';
import type { AddCheck } from './builder.js';

/**
 * A captured table's capture triggers as the root's catalog has them: one
 * disabled (`ALTER TABLE … DISABLE TRIGGER`) or firing only in replica mode
 * loses every write to the table — an error; one firing always also captures
 * what the workers apply — a warning. Returns true when one is missing (the
 * plan captures the table again, which re-creates it).
 */
export function captureTriggerCheck(queue: string, queueState: { id?: number } | undefined, table: TableInfo, check: AddCheck, serverVersionNum: number): boolean {
  if (queueState?.id === undefined || !table.triggerModes) return false;
  const name = displayName(table);
  let missing = false;
  // A partitioned table has the TRUNCATE pair; its row trigger is on the table from PostgreSQL 11 (cloned onto the
  // partitions), on each leaf before (checked with the partitions).
  const triggers =
    table.kind === 'p'
      ? [...(serverVersionNum >= 110000 ? [`pgconvey_capture_${queueState.id}`] : []), `pgconvey_truncate_${queueState.id}`, `pgconvey_truncate_rows_${queueState.id}`]
      : [`pgconvey_capture_${queueState.id}`, `pgconvey_truncate_${queueState.id}`];
  for (const trigger of triggers) {
    const mode = table.triggerModes[trigger];
    if (mode === undefined) {
      missing = true;
      check('warning', 'capture_trigger_missing', `the capture trigger ${trigger} of ${name} (queue "${queue}") is missing: writes to the table are not captured`, 'apply this plan to create it again, then check the table with `pgconvey compare` (and `pgconvey resync` it if it differs)', `queues.${queue}.tables`);
    } else if (mode === 'D' || mode === 'R') {
      check(
        'error',
        'capture_trigger_disabled',
        `the capture trigger ${trigger} of ${name} (queue "${queue}") is ${mode === 'D' ? 'disabled' : 'enabled for replica sessions only'}: writes to the table are not captured`,
        `ALTER TABLE ${name} ENABLE TRIGGER ${trigger}; then check the table with \`pgconvey compare\` (and \`pgconvey resync\` it if it differs)`,
        `queues.${queue}.tables`,
      );
    } else if (mode === 'A') {
      check('warning', 'capture_trigger_always', `the capture trigger ${trigger} of ${name} (queue "${queue}") fires always, also for rows the workers apply`, `ALTER TABLE ${name} ENABLE TRIGGER ${trigger} (fires for ordinary sessions only)`, `queues.${queue}.tables`);
    }
  }
  return missing;
}

/**
 * The capture functions of a root run as its database's capture role, which
 * can only write events; when the role does not exist and the connecting role
 * may not create it, they run as the connecting role instead — a warning, with
 * what an admin runs once to fix it.
 */
export function captureOwnerCheck(root: NodeSpec, catalog: NodeCatalog, check: AddCheck): void {
  const { captureRole, canCreateRole, user } = catalog.privileges;
  if (!captureRole || captureRole.exists || canCreateRole) return;
  check(
    'warning',
    'capture_owner_not_dedicated',
    `role "${user}" on node "${root.name}" may not create roles, so the capture functions will run as "${user}" (with all its rights) instead of a role that can only write events`,
    `as a superuser or a role with CREATEROLE, once: CREATE ROLE ${captureRole.name} NOLOGIN; GRANT ${captureRole.name} TO ${user}; (see docs/security.md)`,
    `queues`,
  );
}

/** Materialized views hold computed rows, not captured ones: nothing replicates them. */
export function materializedViewChecks(queue: QueueSpec, root: NodeSpec, catalog: NodeCatalog, check: AddCheck): void {
  for (const m of catalog.materializedViews ?? []) {
    check(
      'warning',
      'materialized_view_not_replicated',
      `materialized view ${displayName(m)} of database "${root.database}" is not replicated: on a subscriber it holds what its last REFRESH there computed (nothing, after a schema copy)`,
      '`pgconvey switchover` refreshes it on the node taking over before the hand-over (--no-refresh-matviews skips it); or REFRESH MATERIALIZED VIEW it there yourself',
      `queues.${queue.name}.nodes.${root.name}`,
    );
  }
}
