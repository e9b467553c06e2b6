/**
 * The planner's subscriber step, per leaf of a queue: its engine, roles and
 * schema copy when asked for, its subscription, the rights of the file's
 * roles both ways, each replicated table's checks there (missing, schema
 * drift (drift.ts), partitions, triggers that fire on apply), and the tables to start
 * or stop replicating to it. Tables are keyed by `nameKey`. Pure.
 */
import { proposeAddSubscriberTable, proposeRemoveSubscriberTable, proposeSubscribe, tableName } from '../actions/index.js';
import type { NodeCatalog, SequenceInfo, TableInfo } from '../catalog/model.js';
import type { NodeSpec, QueueSpec } from '../config/index.js';
import { displayName, nameKey, sameName } from '../kernel/index.js';
import type { AddCheck, PlanBuilder } from './builder.js';
import { schemaDriftChecks } from './drift.js';
import { planEngine } from './engine.js';
import type { PlanInput } from './input.js';
import { tableNamed } from './catalog-index.js';
import { ancestorsOf, isPartitionOf, partitionsOf } from './partitions.js';
import { forwardPrivilegeProblems, reversePrivilegeProblems } from './privileges.js';
import { planRoles } from './roles.js';
import { planSchemaCopy } from './schema-copy.js';
import type { SelectedTable } from './selection.js';

export interface QueueSide {
  queue: QueueSpec;
  root: NodeSpec;
  rootCatalog: NodeCatalog;
  tables: SelectedTable[];
  sequences: SequenceInfo[];
  /** The ids this node's subscription waits for (the root's engine, create_queue; a branch provider's queue). */
  queueReady: string[];
  /** The node it subscribes to (the root, or a branch: cascades); default the root. */
  provider?: NodeSpec;
  /** The capture action of each table captured (again) by this plan, by `nameKey`. */
  captureIds: ReadonlyMap<string, string>;
}

/** The subscriber's own ids: its subscribe and engine actions, when this plan has them. */
export interface SubscriberIds {
  subscribe: string | null;
  engine: string | null;
}

export function planSubscriber(input: PlanInput, q: QueueSide, leaf: NodeSpec, plan: PlanBuilder): SubscriberIds {
  const { queue, root, rootCatalog, tables } = q;
  const provider = q.provider ?? root;
  const check = plan.check;
  const site = { node: leaf.name, database: leaf.database };
  const sub = input.catalogs[leaf.database];
  if (!sub) throw new Error(`internal: no catalog for database "${leaf.database}"`);
  const subEngine = planEngine(input, leaf, plan);
  if (Math.floor(sub.serverVersionNum / 10000) < Math.floor(rootCatalog.serverVersionNum / 10000)) {
    check('warning', 'subscriber_older', `node "${leaf.name}" runs PostgreSQL ${sub.serverVersion}, older than its provider's ${rootCatalog.serverVersion}`, 'an upgrade goes from an older server to a newer one; check the direction', `queues.${queue.name}.nodes.${leaf.name}`);
  }
  const missingOwners = [...new Set(tables.map((t) => t.table.owner))].filter((r) => !sub.roles.some((x) => x.name === r)).sort();
  const roleIds = input.state.prepare.roles === 'copy' ? planRoles(queue, leaf, root.database, rootCatalog, sub, plan) : [];
  if (missingOwners.length && input.state.prepare.roles !== 'copy') {
    check('warning', 'roles_missing_on_subscriber', `node "${leaf.name}" lacks the role(s) ${missingOwners.join(', ')} that own replicated tables on the provider`, 'create them on the subscriber, or set prepare.roles: copy', `queues.${queue.name}.nodes.${leaf.name}`);
  }
  const subscription = sub.engine?.subscriptions.find((s) => s.queue === queue.name && s.consumer === leaf.name);
  const subscribe = subscription
    ? null
    : plan.add(proposeSubscribe({ leaf: site, queue: queue.name, provider: { node: provider.name, database: provider.database }, dependsOn: [...q.queueReady, ...(subEngine ? [subEngine] : [])] }));
  const subscribed = new Map((subscription?.tables ?? []).map((t) => [nameKey(t), t]));
  const onSub = (t: Pick<TableInfo, 'schema' | 'name'>) => tableNamed(sub, t) !== undefined;
  const absent = tables.filter(({ table }) => !onSub(table)).map((t) => t.table);
  // A partitioned parent new has already: the schema copy adds the partitions created on the provider since
  // (one that is missing with its parent comes with the parent's own copy).
  if (input.state.prepare.schema === 'copy') {
    for (const { table } of tables) {
      if (table.kind !== 'p' || !onSub(table)) continue;
      const missing = partitionsOf(rootCatalog, table).filter((p) => !onSub(p));
      absent.push(...missing.filter((p) => !missing.some((parent) => isPartitionOf(p, parent))));
    }
  }
  const copySchema = input.state.prepare.schema === 'copy' && absent.length ? planSchemaCopy(input, queue, leaf, root.database, rootCatalog, absent, missingOwners, roleIds, plan) : null;
  // The rights of the file's roles, both ways: what apply, run and the switchover need (errors), and what
  // switchover --reverse and the switch back will need (warnings: the forward upgrade works without them).
  const replicated = tables.map(({ table }) => ({ schema: table.schema, name: table.name, owner: table.owner }));
  const carriedSequences = q.sequences.map((x) => ({ schema: x.schema, name: x.name, owner: x.owner }));
  const made = input.state.prepare.schema === 'copy' ? absent.map((t) => ({ schema: t.schema, name: t.name, owner: t.owner })) : [];
  const recapture = plan
    .actions()
    .flatMap((a) => (a.queue === queue.name && ((a.kind === 'capture_table' && a.change === 'update') || a.kind === 'remove_capture') ? [tableName(a.params)] : []))
    .map((n) => ({ schema: n.schema, name: n.name, owner: tableNamed(rootCatalog, n)?.owner ?? '' }));
  for (const problem of [
    // A node under a branch reads from the branch (its copy, its worker): checked on the branch's catalog.
    ...forwardPrivilegeProblems(
      provider.name === root.name
        ? { provider: { node: root.name, catalog: rootCatalog }, subscriber: { node: leaf.name, catalog: sub }, tables: replicated, sequences: carriedSequences, schemaCopy: made, recapture }
        : { provider: { node: provider.name, catalog: input.catalogs[provider.database] ?? rootCatalog }, providerType: 'branch', subscriber: { node: leaf.name, catalog: sub }, tables: replicated, sequences: carriedSequences, schemaCopy: made },
    ),
    ...reversePrivilegeProblems({ old: { node: root.name, catalog: rootCatalog }, neu: { node: leaf.name, catalog: sub }, tables: replicated, sequences: carriedSequences }),
  ]) {
    check(problem.severity, problem.code, problem.message, problem.hint, `queues.${queue.name}.nodes.${problem.node}`);
  }
  const selectedNames = new Set(tables.map((t) => nameKey(t.table)));
  for (const { table } of tables) {
    const name = displayName(table);
    const captureId = q.captureIds.get(nameKey(table));
    const there = tableNamed(sub, table);
    if (!there) {
      if (input.state.prepare.schema !== 'copy') {
        check('error', 'table_missing_on_subscriber', `table ${name} does not exist on node "${leaf.name}"`, 'create it there (pg_dump --schema-only), or set prepare.schema: copy', `queues.${queue.name}.nodes.${leaf.name}`);
      } else if (copySchema) {
        plan.add(
          proposeAddSubscriberTable({
            leaf: site,
            queue: queue.name,
            table,
            reason: 'it is captured on the provider and not yet copied here',
            dependsOn: [...(subscribe ? [subscribe] : []), copySchema, ...(captureId ? [captureId] : [])],
          }),
        );
      }
      continue;
    }
    schemaDriftChecks(table, there, { node: leaf.name, path: `queues.${queue.name}.nodes.${leaf.name}` }, check);
    if (table.kind === 'p') partitionSubscriberChecks(input, queue, leaf, rootCatalog, sub, table, there, check);
    // A trigger marked ENABLE ALWAYS or ENABLE REPLICA fires for the apply worker too, as its role: it may
    // change replicated rows, and it runs the table owner's code with the worker's rights.
    const firing = Object.entries(there.triggerModes ?? {})
      .filter(([trigger, mode]) => (mode === 'A' || mode === 'R') && !trigger.startsWith('pgconvey_'))
      .map(([trigger]) => trigger)
      .sort();
    if (firing.length) {
      check(
        'warning',
        'subscriber_trigger_fires_on_apply',
        `table ${name} on node "${leaf.name}" has trigger(s) ${firing.join(', ')} set to fire during replication (ENABLE ALWAYS or ENABLE REPLICA): they run as the apply role for every replicated row`,
        'unless that is intended, ALTER TABLE … ENABLE TRIGGER … (fires only for the application) on the subscriber; see docs/security.md',
        `queues.${queue.name}.nodes.${leaf.name}`,
      );
    }
    if (subscribed.has(nameKey(table))) continue;
    // The initial copy empties the subscriber's table first: rows there (a finished upgrade, a wrong
    // database) would be lost, so that needs the same consent as any destructive action.
    const occupied = there.bytes > 0;
    plan.add(
      proposeAddSubscriberTable({
        leaf: site,
        queue: queue.name,
        table,
        reason: occupied
          ? `it is captured on the provider and not yet copied here; the table here is not empty (${there.estimatedRows ?? 'some'} rows estimated) and the copy replaces its rows`
          : 'it is captured on the provider and not yet copied here',
        destructive: occupied,
        dependsOn: [...(subscribe ? [subscribe] : []), ...(captureId ? [captureId] : [])],
      }),
    );
  }
  for (const [key, t] of subscribed) {
    if (selectedNames.has(key)) continue;
    plan.add(proposeRemoveSubscriberTable({ leaf: site, queue: queue.name, table: t }));
  }
  return { subscribe, engine: subEngine };
}

/**
 * A partitioned table on a subscriber: rows arrive through the parent, which routes each to its partition
 * there (the layout may differ from the provider's). Warns of a provider leaf with no partition of the same
 * name there (unless the schema copy makes it), and of a partition still attached there that was detached on
 * the provider (a table of that name exists on the provider outside the tree).
 */
function partitionSubscriberChecks(input: PlanInput, queue: QueueSpec, leaf: NodeSpec, root: NodeCatalog, sub: NodeCatalog, table: TableInfo, there: TableInfo, check: AddCheck): void {
  const name = displayName(table);
  const providerTree = new Set(partitionsOf(root, table).map(nameKey));
  const subTree = partitionsOf(sub, there);
  const subNames = new Set(subTree.map(nameKey));
  if (there.kind === 'p' && input.state.prepare.schema !== 'copy') {
    const lacking = partitionsOf(root, table)
      .filter((t) => t.kind === 'r' && !subNames.has(nameKey(t)))
      .map(displayName);
    if (lacking.length) {
      check(
        'warning',
        'partition_missing_on_subscriber',
        `${name} on node "${leaf.name}" has no partition named like ${lacking.join(', ')} of the provider: their rows are applied through ${name} there and need a partition of it that accepts them`,
        `create the partition(s) on the subscriber (CREATE TABLE … PARTITION OF ${name} FOR VALUES …) before rows arrive, or make sure another (or the DEFAULT) partition takes them; otherwise the worker stops with "no partition of relation … found for row"`,
        `queues.${queue.name}.nodes.${leaf.name}`,
      );
    }
  }
  for (const t of subTree) {
    const onProvider = tableNamed(root, t);
    if (onProvider && !providerTree.has(nameKey(t)) && !ancestorsOf(root, onProvider).some((a) => sameName(a, table))) {
      const n = displayName(t);
      check(
        'warning',
        'partition_detached',
        `table ${n} is a partition of ${name} on node "${leaf.name}" but not on the provider (detached there): its rows there are counted in ${name} and are no longer replicated`,
        `ALTER TABLE ${name} DETACH PARTITION ${n} on node "${leaf.name}" (or delete its rows), as on the provider; then check with \`pgconvey compare\``,
        `queues.${queue.name}.nodes.${leaf.name}`,
      );
    }
  }
}
