/**
 * The planner: a pure function from the desired state and the catalog of
 * every database to a Plan — checks (with codes and fix hints) and actions in
 * a deterministic order. Globs are resolved on the root's catalog, so a new
 * table that matches `include` shows up in the next plan. No I/O.
 */
import type { EngineQueueSettings, NodeCatalog, TableInfo } from '../catalog/model.js';
import type { DesiredState, NodeSpec, QueueSpec, Selection } from '../config/index.js';
import { matchesPattern } from '../config/names.js';
import { copyPinOwner, hasErrors, isCopyPin, stalePins, type Diagnostic, type PinHolder } from '../kernel/index.js';
import { isCopyInProgress, type TableState } from '../engine/table-state.js';
import { ACTION_KINDS, type Action, type ActionKind, type Change } from './action.js';
import { ancestorsOf, inheritanceChildrenOf, partitionCapture, partitionsOf } from './partitions.js';
import type { Plan } from './plan.js';
import { forwardPrivilegeProblems, reversePrivilegeProblems } from './privileges.js';

export interface PlanInput {
  state: DesiredState;
  /** Catalog of each database, by its name in the desired state. */
  catalogs: Readonly<Record<string, NodeCatalog>>;
  /** The engine version (newest migration) this pgconvey installs. */
  engineVersion: number;
  /** The content version (sha256 of the engine SQL) it installs; when given, an engine of the same migration with other content is upgraded too. */
  engineContent?: string;
  /** Local tools found by the caller; `prepare.schema: copy` needs pg_dump. */
  tools?: { pgDump: PgDumpTool | null };
  /**
   * What the caller's dry run of each `copy_schema` found (by action id): the
   * objects it creates and every one it cannot. Absent: the action is planned
   * without them (the caller plans once to learn which copies to try).
   */
  schemaCopies?: Readonly<Record<string, SchemaCopyFindings>>;
}

export interface SchemaCopyFindings {
  /** The objects the copy creates, in order: pg_dump's entry type (`TABLE`, `FK CONSTRAINT`…) and the object's name. */
  objects: Array<{ type: string; name: string }>;
  /** Each object the copy cannot create, and why. */
  problems: SchemaCopyProblem[];
}

export interface SchemaCopyProblem {
  code: string;
  /** The object, e.g. `EXTENSION postgis`. */
  object: string;
  message: string;
  hint: string;
}

export interface PgDumpTool {
  path: string;
  major: number;
  version: string;
}

const qualified = (schema: string, name: string) => `${schema}.${name}`;

/**
 * A captured table's capture triggers as the root's catalog has them: one
 * disabled (`ALTER TABLE … DISABLE TRIGGER`) or firing only in replica mode
 * loses every write to the table — an error; one firing always also captures
 * what the workers apply — a warning. Returns true when one is missing (the
 * plan captures the table again, which re-creates it).
 */
function captureTriggerCheck(
  queue: string,
  queueState: { id?: number } | undefined,
  table: TableInfo,
  check: (severity: Diagnostic['severity'], code: string, message: string, hint: string, path?: string) => void,
  serverVersionNum: number,
): boolean {
  if (queueState?.id === undefined || !table.triggerModes) return false;
  const name = qualified(table.schema, table.name);
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
function captureOwnerCheck(root: NodeSpec, catalog: NodeCatalog, check: AddCheck): void {
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

export function buildPlan(input: PlanInput): Plan {
  const checks: Diagnostic[] = [];
  const actions = new Map<string, Action>();
  const check = (severity: Diagnostic['severity'], code: string, message: string, hint: string, path?: string) =>
    checks.push({ severity, code, message, hint, ...(path ? { path } : {}) });
  const add = (kind: ActionKind, change: Change, node: NodeSpec, rest: Partial<Action> & { reason: string }) => {
    const id = `${kind}:${node.name}${rest.object ? `:${rest.object}` : rest.queue && kind !== 'install_engine' && kind !== 'upgrade_engine' ? `:${rest.queue}` : ''}`;
    if (!actions.has(id)) {
      actions.set(id, { id, kind, change, node: node.name, database: node.database, queue: null, object: null, dependsOn: [], destructive: false, params: {}, ...rest });
    }
    return id;
  };

  const matviewsListed = new Set<string>();
  for (const queue of input.state.queues) {
    const root = queue.nodes.find((n) => n.type === 'root')!;
    const rootCatalog = input.catalogs[root.database];
    if (!rootCatalog) throw new Error(`internal: no catalog for database "${root.database}"`);
    // Materialized views hold computed rows, not captured ones: nothing replicates them.
    if (!matviewsListed.has(root.database)) {
      matviewsListed.add(root.database);
      for (const m of rootCatalog.materializedViews ?? []) {
        check(
          'warning',
          'materialized_view_not_replicated',
          `materialized view ${qualified(m.schema, m.name)} of database "${root.database}" is not replicated: on a subscriber it holds what its last REFRESH there computed (nothing, after a schema copy)`,
          '`pgconvey switchover` refreshes it on the node taking over before the hand-over (--no-refresh-matviews skips it); or REFRESH MATERIALIZED VIEW it there yourself',
          `queues.${queue.name}.nodes.${root.name}`,
        );
      }
    }
    for (const node of queue.nodes.filter((n) => n.type === 'branch')) {
      check('error', 'branch_not_supported', `node "${node.name}" of queue "${queue.name}" is a branch; cascades are not supported yet`, 'make it a leaf of the root for now', `queues.${queue.name}.nodes.${node.name}`);
    }

    const engineReady = (node: NodeSpec): string | null => engineAction(input, node, add, check);
    const rootEngine = engineReady(root);
    captureOwnerCheck(root, rootCatalog, check);
    const queueState = rootCatalog.engine?.queues.find((q) => q.name === queue.name);
    const createQueue = queueState
      ? null
      : add('create_queue', 'create', root, { queue: queue.name, reason: `queue "${queue.name}" does not exist on its root`, dependsOn: rootEngine ? [rootEngine] : [] });
    const queueReady = [rootEngine, createQueue].filter((x): x is string => x !== null);
    if (queueState) {
      const want = queueSettings(queue);
      const changed = (Object.keys(want) as Array<keyof typeof want>).filter((k) => want[k] !== queueState.settings[k]);
      if (changed.length) {
        add('configure_queue', 'update', root, {
          queue: queue.name,
          reason: `its settings differ from the file: ${changed.map((k) => `${k} ${queueState.settings[k]} → ${want[k]}`).join(', ')}`,
          dependsOn: rootEngine ? [rootEngine] : [],
          params: { settings: want },
        });
      }
    }

    // Tables: resolve the selection on the root, check each, capture what is not captured yet.
    const tables = selectTables(queue, rootCatalog, check);
    const captured = new Map((queueState?.tables ?? []).map((t) => [qualified(t.schema, t.name), t]));
    const captureIds = new Map<string, string>();
    for (const { table, key } of tables) {
      const name = qualified(table.schema, table.name);
      const current = captured.get(name);
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
      captureIds.set(
        name,
        add('capture_table', current ? 'update' : 'create', root, {
          queue: queue.name,
          object: name,
          reason: !current
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
              : `its columns changed from (${current.columns.join(', ')}) to (${shipped.join(', ')}) (ALTER TABLE on the provider)`,
          dependsOn: queueReady,
          params: { schema: table.schema, table: table.name, keyColumns: key },
        }),
      );
    }
    const selectedNames = new Set(tables.map((t) => qualified(t.table.schema, t.table.name)));
    for (const [name, t] of captured) {
      if (selectedNames.has(name)) continue;
      add('remove_capture', 'delete', root, {
        queue: queue.name,
        object: name,
        reason: 'it is captured but no longer selected by the file',
        destructive: true,
        params: { schema: t.schema, table: t.name },
      });
    }

    // Sequences.
    const sequences = rootCatalog.sequences.filter((s) => selected(queue.sequences, s.schema, s.name));
    const carried = new Set((queueState?.sequences ?? []).map((s) => qualified(s.schema, s.name)));
    for (const s of sequences) {
      const name = qualified(s.schema, s.name);
      if (carried.has(name)) continue;
      add('capture_sequence', 'create', root, { queue: queue.name, object: name, reason: 'it matches the queue\'s sequences', dependsOn: queueReady, params: { schema: s.schema, sequence: s.name } });
    }
    for (const name of carried) {
      if (sequences.some((s) => qualified(s.schema, s.name) === name)) continue;
      const [schema, seq] = splitName(name);
      add('remove_sequence', 'delete', root, { queue: queue.name, object: name, reason: 'it is carried but no longer selected by the file', params: { schema, sequence: seq } });
    }

    // Copy pins no copy needs (the copy finished or failed, its table or node left the file) hold events back too.
    const pinHolders = new Map<string, PinHolder<TableState>[]>();
    const unknown = new Set<string>();
    for (const leaf of queue.nodes.filter((n) => n.type === 'leaf')) {
      const subscription = input.catalogs[leaf.database]?.engine?.subscriptions.find((s) => s.queue === queue.name && s.consumer === leaf.name);
      if (subscription) pinHolders.set(leaf.name, subscription.tables);
      else unknown.add(leaf.name); // not subscribed (yet): its pins, if any, are left alone
    }
    const stale = stalePins((queueState?.consumers ?? []).map((c) => c.name), pinHolders, isCopyInProgress).filter((pin) => !unknown.has(copyPinOwner(pin) ?? ''));
    for (const name of stale) {
      add('remove_consumer', 'delete', root, {
        queue: queue.name,
        object: name,
        reason: `the copy pin is stale (its copy is merged, failed or superseded, or its table or node left the file): it keeps the root from emptying its event tables`,
        params: { consumer: name },
      });
    }

    // Consumers on the root that no node of the file stands for any more hold events back (and disk).
    for (const consumer of queueState?.consumers ?? []) {
      if (isCopyPin(consumer.name) || queue.nodes.some((n) => n.type === 'leaf' && n.name === consumer.name)) continue;
      add('remove_consumer', 'delete', root, {
        queue: queue.name,
        object: consumer.name,
        reason: `node "${consumer.name}" is no longer in the file: its consumer keeps the root from emptying its event tables`,
        destructive: true,
        params: { consumer: consumer.name },
      });
    }

    // Subscribers.
    for (const leaf of queue.nodes.filter((n) => n.type === 'leaf')) {
      const sub = input.catalogs[leaf.database];
      if (!sub) throw new Error(`internal: no catalog for database "${leaf.database}"`);
      const subEngine = engineReady(leaf);
      if (Math.floor(sub.serverVersionNum / 10000) < Math.floor(rootCatalog.serverVersionNum / 10000)) {
        check('warning', 'subscriber_older', `node "${leaf.name}" runs PostgreSQL ${sub.serverVersion}, older than its provider's ${rootCatalog.serverVersion}`, 'an upgrade goes from an older server to a newer one; check the direction', `queues.${queue.name}.nodes.${leaf.name}`);
      }
      const missingOwners = [...new Set(tables.map((t) => t.table.owner))].filter((r) => !sub.roles.some((x) => x.name === r)).sort();
      const roleIds = input.state.prepare.roles === 'copy' ? planRoles(queue, leaf, rootCatalog, sub, add, check) : [];
      if (missingOwners.length && input.state.prepare.roles !== 'copy') {
        check('warning', 'roles_missing_on_subscriber', `node "${leaf.name}" lacks the role(s) ${missingOwners.join(', ')} that own replicated tables on the provider`, 'create them on the subscriber, or set prepare.roles: copy', `queues.${queue.name}.nodes.${leaf.name}`);
      }
      const subscription = sub.engine?.subscriptions.find((s) => s.queue === queue.name && s.consumer === leaf.name);
      const subscribe = subscription
        ? null
        : add('subscribe', 'create', leaf, {
            queue: queue.name,
            reason: `node "${leaf.name}" is not subscribed to queue "${queue.name}" yet`,
            dependsOn: [...queueReady, ...(subEngine ? [subEngine] : [])],
            params: { provider: root.name, consumer: leaf.name },
          });
      const subscribed = new Set((subscription?.tables ?? []).map((t) => qualified(t.schema, t.name)));
      const onSub = (t: Pick<TableInfo, 'schema' | 'name'>) => sub.tables.some((x) => x.schema === t.schema && x.name === t.name);
      const absent = tables.filter(({ table }) => !onSub(table)).map((t) => t.table);
      // A partitioned parent new has already: the schema copy adds the partitions created on the provider since
      // (one that is missing with its parent comes with the parent's own copy).
      if (input.state.prepare.schema === 'copy') {
        for (const { table } of tables) {
          if (table.kind !== 'p' || !onSub(table)) continue;
          const missing = partitionsOf(rootCatalog, table).filter((p) => !onSub(p));
          const names = new Set(missing.map((p) => qualified(p.schema, p.name)));
          absent.push(...missing.filter((p) => !(p.partitionOf && names.has(p.partitionOf))));
        }
      }
      const copySchema = input.state.prepare.schema === 'copy' && absent.length ? planSchemaCopy(input, queue, leaf, rootCatalog, absent, missingOwners, roleIds, add, check) : null;
      // The rights of the file's roles, both ways: what apply, run and the switchover need (errors), and what
      // switchover --reverse and the switch back will need (warnings: the forward upgrade works without them).
      const replicated = tables.map(({ table }) => ({ schema: table.schema, name: table.name, owner: table.owner }));
      const carriedSequences = sequences.map((x) => ({ schema: x.schema, name: x.name, owner: x.owner }));
      const made = input.state.prepare.schema === 'copy' ? absent.map((t) => ({ schema: t.schema, name: t.name, owner: t.owner })) : [];
      const recapture = [...actions.values()]
        .filter((a) => a.queue === queue.name && ((a.kind === 'capture_table' && a.change === 'update') || a.kind === 'remove_capture'))
        .map((a) => {
          const [schema, name] = splitName(a.object!);
          return { schema, name, owner: rootCatalog.tables.find((t) => t.schema === schema && t.name === name)?.owner ?? '' };
        });
      for (const problem of [
        ...forwardPrivilegeProblems({ provider: { node: root.name, catalog: rootCatalog }, subscriber: { node: leaf.name, catalog: sub }, tables: replicated, sequences: carriedSequences, schemaCopy: made, recapture }),
        ...reversePrivilegeProblems({ old: { node: root.name, catalog: rootCatalog }, neu: { node: leaf.name, catalog: sub }, tables: replicated, sequences: carriedSequences }),
      ]) {
        check(problem.severity, problem.code, problem.message, problem.hint, `queues.${queue.name}.nodes.${problem.node}`);
      }
      for (const { table } of tables) {
        const name = qualified(table.schema, table.name);
        const there = sub.tables.find((t) => t.schema === table.schema && t.name === table.name);
        if (!there) {
          if (input.state.prepare.schema !== 'copy') {
            check('error', 'table_missing_on_subscriber', `table ${name} does not exist on node "${leaf.name}"`, 'create it there (pg_dump --schema-only), or set prepare.schema: copy', `queues.${queue.name}.nodes.${leaf.name}`);
          } else if (copySchema) {
            add('add_subscriber_table', 'create', leaf, {
              queue: queue.name,
              object: name,
              reason: 'it is captured on the provider and not yet copied here',
              dependsOn: [...(subscribe ? [subscribe] : []), copySchema, ...(captureIds.has(name) ? [captureIds.get(name)!] : [])],
              params: { schema: table.schema, table: table.name, consumer: leaf.name },
            });
          }
          continue;
        }
        const shipped = table.columns.filter((c) => c.generated === '');
        const lacking = shipped.filter((c) => !there.columns.some((x) => x.name === c.name)).map((c) => c.name);
        if (lacking.length) {
          check('error', 'columns_missing_on_subscriber', `table ${name} on node "${leaf.name}" lacks the column(s) ${lacking.join(', ')}`, 'add them on the subscriber (ALTER TABLE … ADD COLUMN)', `queues.${queue.name}.nodes.${leaf.name}`);
        }
        for (const c of shipped) {
          const other = there.columns.find((x) => x.name === c.name);
          if (other && other.type !== c.type) {
            check('warning', 'column_type_differs', `column ${name}.${c.name} is ${c.type} on the provider and ${other.type} on node "${leaf.name}"`, 'make sure every value converts (the subscriber reads the text of each value)', `queues.${queue.name}.nodes.${leaf.name}`);
          }
        }
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
        if (subscribed.has(name)) continue;
        // The initial copy empties the subscriber's table first: rows there (a finished upgrade, a wrong
        // database) would be lost, so that needs the same consent as any destructive action.
        const occupied = there.bytes > 0;
        add('add_subscriber_table', 'create', leaf, {
          queue: queue.name,
          object: name,
          reason: occupied
            ? `it is captured on the provider and not yet copied here; the table here is not empty (${there.estimatedRows ?? 'some'} rows estimated) and the copy replaces its rows`
            : 'it is captured on the provider and not yet copied here',
          destructive: occupied,
          dependsOn: [...(subscribe ? [subscribe] : []), ...(captureIds.has(name) ? [captureIds.get(name)!] : [])],
          params: { schema: table.schema, table: table.name, consumer: leaf.name },
        });
      }
      for (const name of subscribed) {
        if (selectedNames.has(name)) continue;
        const [schema, table] = splitName(name);
        add('remove_subscriber_table', 'delete', leaf, {
          queue: queue.name,
          object: name,
          reason: 'it is no longer selected by the file: it stops replicating here (its rows stay)',
          destructive: true,
          params: { schema, table, consumer: leaf.name },
        });
      }
    }
  }

  const ordered = [...actions.values()].sort((a, b) => ACTION_KINDS.indexOf(a.kind) - ACTION_KINDS.indexOf(b.kind) || a.id.localeCompare(b.id));
  return {
    checks,
    actions: ordered,
    summary: {
      add: ordered.filter((a) => a.change === 'create').length,
      change: ordered.filter((a) => a.change === 'update').length,
      remove: ordered.filter((a) => a.change === 'delete').length,
    },
    errored: hasErrors(checks),
  };
}

/**
 * A partitioned table on a subscriber: rows arrive through the parent, which routes each to its partition
 * there (the layout may differ from the provider's). Warns of a provider leaf with no partition of the same
 * name there (unless the schema copy makes it), and of a partition still attached there that was detached on
 * the provider (a table of that name exists on the provider outside the tree).
 */
function partitionSubscriberChecks(input: PlanInput, queue: QueueSpec, leaf: NodeSpec, root: NodeCatalog, sub: NodeCatalog, table: TableInfo, there: TableInfo, check: AddCheck): void {
  const name = qualified(table.schema, table.name);
  const providerTree = new Set(partitionsOf(root, table).map((t) => qualified(t.schema, t.name)));
  const subTree = partitionsOf(sub, there);
  const subNames = new Set(subTree.map((t) => qualified(t.schema, t.name)));
  if (there.kind === 'p' && input.state.prepare.schema !== 'copy') {
    const lacking = partitionsOf(root, table)
      .filter((t) => t.kind === 'r' && !subNames.has(qualified(t.schema, t.name)))
      .map((t) => qualified(t.schema, t.name));
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
  const providerNames = new Set(root.tables.map((t) => qualified(t.schema, t.name)));
  for (const t of subTree) {
    const n = qualified(t.schema, t.name);
    if (providerNames.has(n) && !providerTree.has(n) && !ancestorsOf(root, root.tables.find((x) => qualified(x.schema, x.name) === n)!).includes(name)) {
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

type AddAction = (kind: ActionKind, change: Change, node: NodeSpec, rest: Partial<Action> & { reason: string }) => string;
type AddCheck = (severity: Diagnostic['severity'], code: string, message: string, hint: string, path?: string) => void;

/**
 * prepare.roles: copy — the provider's roles missing on the subscriber, and
 * memberships the subscriber lacks; returns the action ids.
 */
function planRoles(queue: QueueSpec, leaf: NodeSpec, root: NodeCatalog, sub: NodeCatalog, add: AddAction, check: AddCheck): string[] {
  const ids: string[] = [];
  const dbNode = { ...leaf, name: `db:${leaf.database}` };
  const created: string[] = [];
  for (const role of root.roles) {
    if (sub.roles.some((r) => r.name === role.name)) continue;
    created.push(role.name);
    ids.push(add('create_role', 'create', dbNode, { queue: queue.name, object: role.name, reason: `role "${role.name}" exists on the provider and not on this server`, params: { role } }));
  }
  for (const role of root.roles) {
    const there = sub.roles.find((r) => r.name === role.name);
    for (const parent of role.memberOf) {
      if (there?.memberOf.includes(parent)) continue;
      const deps = [role.name, parent].filter((n) => created.includes(n)).map((n) => `create_role:${dbNode.name}:${n}`);
      ids.push(add('grant_role', 'create', dbNode, { queue: queue.name, object: `${role.name}:${parent}`, reason: `on the provider "${role.name}" is a member of "${parent}"`, dependsOn: deps, params: { member: role.name, parent } }));
    }
  }
  const withoutPassword = created.filter((n) => root.roles.find((r) => r.name === n)!.canLogin);
  if (withoutPassword.length && !root.privileges.superuser) {
    check('warning', 'role_passwords_not_copied', `login role(s) ${withoutPassword.join(', ')} will be created on node "${leaf.name}" without a password: only a superuser may read password hashes on the provider`, 'connect to the provider as a superuser to copy them, or set them afterwards with ALTER ROLE … PASSWORD', `prepare.roles`);
  }
  return ids;
}

/**
 * prepare.schema: copy — one action creating the tables missing on the
 * subscriber from the provider's definitions with pg_dump, which must be
 * at least as new as the provider; returns its id, or null when it cannot.
 */
function planSchemaCopy(
  input: PlanInput,
  queue: QueueSpec,
  leaf: NodeSpec,
  root: NodeCatalog,
  absent: TableInfo[],
  missingOwners: string[],
  roleIds: string[],
  add: AddAction,
  check: AddCheck,
): string | null {
  const needed = Math.floor(root.serverVersionNum / 10000);
  const pgDump = input.tools?.pgDump ?? null;
  const names = absent.map((t) => qualified(t.schema, t.name));
  if (!pgDump || pgDump.major < needed) {
    check(
      'error',
      pgDump ? 'pg_dump_too_old' : 'pg_dump_not_found',
      `prepare.schema: copy needs pg_dump of PostgreSQL ${needed} or newer to create ${names.join(', ')} on node "${leaf.name}"; ${pgDump ? `found ${pgDump.version} at ${pgDump.path}` : 'none was found'}`,
      `install the PostgreSQL ${needed}+ client tools (e.g. apt-get install postgresql-client-${Math.max(needed, 15)}), or point PGCONVEY_PG_DUMP at a pg_dump`,
      'prepare.schema',
    );
    return null;
  }
  const owners = missingOwners.filter((o) => absent.some((t) => t.owner === o));
  if (owners.length && input.state.prepare.roles !== 'copy') {
    check('error', 'roles_missing_for_schema_copy', `the tables to create on node "${leaf.name}" are owned by role(s) ${owners.join(', ')}, which do not exist there`, 'create the roles there, or set prepare.roles: copy', 'prepare.schema');
    return null;
  }
  const id = `copy_schema:${leaf.name}:${queue.name}`;
  const findings = input.schemaCopies?.[id];
  for (const p of findings?.problems ?? []) check('error', p.code, p.message, p.hint, 'prepare.schema');
  const objects = findings ? `${input.state.prepare.schemaObjects === 'all' ? ', with every other object missing here' : ' and what they need'}: ${countByType(findings.objects)}` : '';
  return add('copy_schema', 'create', leaf, {
    queue: queue.name,
    reason: `table(s) ${names.join(', ')} do not exist here; pg_dump ${pgDump.version} creates them from the provider's definitions${objects}`,
    dependsOn: roleIds,
    // No path to pg_dump here: nothing executable is ever taken from a plan; apply finds pg_dump itself.
    params: { tables: absent.map((t) => ({ schema: t.schema, table: t.name })), consumer: leaf.name, mode: input.state.prepare.schemaObjects, ...(findings ? { objects: findings.objects } : {}) },
  });
}

/** `3 table, 2 sequence…` in the order first met. */
function countByType(objects: ReadonlyArray<{ type: string }>): string {
  const counts = new Map<string, number>();
  for (const o of objects) counts.set(o.type, (counts.get(o.type) ?? 0) + 1);
  return counts.size ? [...counts].map(([t, n]) => `${n} ${t.toLowerCase()}`).join(', ') : 'nothing else';
}

/** The queue settings the file asks for, in the engine's terms. */
export function queueSettings(queue: QueueSpec): EngineQueueSettings {
  const d = queue.daemons;
  return {
    tickerMaxCount: d.ticker.maxEvents,
    tickerMaxLagMs: d.ticker.maxLagMs,
    tickerIdlePeriodMs: d.ticker.idlePeriodMs,
    rotationTxids: d.maintenance.rotationTransactions,
    tickRetentionMs: d.maintenance.tickRetentionMs,
  };
}

/** Install or upgrade the engine on a node's database when needed; returns the action id, if any. */
function engineAction(
  input: PlanInput,
  node: NodeSpec,
  add: (kind: ActionKind, change: Change, node: NodeSpec, rest: Partial<Action> & { reason: string }) => string,
  check: (severity: Diagnostic['severity'], code: string, message: string, hint: string, path?: string) => void,
): string | null {
  const catalog = input.catalogs[node.database]!;
  const installed = catalog.engine;
  if (installed === null) {
    if (!catalog.privileges.canCreateSchema) {
      check('error', 'cannot_install_engine', `role "${catalog.privileges.user}" may not create the pgconvey schema in database "${node.database}"`, `GRANT CREATE ON DATABASE ${catalog.database} TO ${catalog.privileges.user};`);
    }
    return add('install_engine', 'create', { ...node, name: `db:${node.database}` }, { reason: `the engine is not installed in database "${node.database}"`, params: { version: input.engineVersion } });
  }
  if (installed.version > input.engineVersion) {
    check('error', 'engine_too_new', `the engine in database "${node.database}" is version ${installed.version}, newer than this pgconvey (${input.engineVersion})`, 'use a pgconvey at least as new as the one that installed it; pgconvey never downgrades an engine');
    return null;
  }
  const otherContent = input.engineContent !== undefined && installed.content !== input.engineContent;
  if (installed.version < input.engineVersion || otherContent) {
    const what = (version: number, content: string | null) => `version ${version} (content ${content === null ? 'not recorded' : content.slice(0, 12)})`;
    return add('upgrade_engine', 'update', { ...node, name: `db:${node.database}` }, {
      reason: `the engine in database "${node.database}" is ${what(installed.version, installed.content)}, this pgconvey installs ${what(input.engineVersion, input.engineContent ?? null)}`,
      params: { from: installed.version, to: input.engineVersion, fromContent: installed.content, toContent: input.engineContent ?? null },
    });
  }
  return null;
}

function selected(selection: Selection<unknown>, schema: string, name: string): boolean {
  const listed = selection.entries.some((e) => e.pattern.exact.schema === schema && e.pattern.exact.name === name);
  if (listed) return true;
  return selection.include.some((p) => matchesPattern(p, schema, name)) && !selection.exclude.some((p) => matchesPattern(p, schema, name));
}

/** The root's tables a queue replicates (as the plan selects them), for callers that prepare actions. */
export function replicatedTables(queue: QueueSpec, root: NodeCatalog): TableInfo[] {
  return selectTables(queue, root, () => undefined).map((t) => t.table);
}

interface SelectedTable {
  table: TableInfo;
  key: string[];
}

/** The root's tables the queue selects, each with its key; reports what cannot be replicated. */
function selectTables(queue: QueueSpec, root: NodeCatalog, check: (severity: Diagnostic['severity'], code: string, message: string, hint: string, path?: string) => void): SelectedTable[] {
  const path = `queues.${queue.name}.tables`;
  const out: SelectedTable[] = [];
  for (const entry of queue.tables.entries) {
    const { schema, name } = entry.pattern.exact;
    if (!root.tables.some((t) => t.schema === schema && t.name === name)) {
      check('error', 'table_not_found', `table ${entry.pattern.text} listed under entries does not exist on the root`, 'check the name (unquoted names are lower case), or create the table', `${path}.entries`);
    }
  }
  for (const pattern of queue.tables.include) {
    if (!root.tables.some((t) => matchesPattern(pattern, t.schema, t.name))) {
      check('warning', 'include_matches_nothing', `include "${pattern.text}" matches no table on the root`, 'check the pattern; it is resolved again at every plan', `${path}.include`);
    }
  }
  const byName = [...root.tables].sort((a, b) => a.schema.localeCompare(b.schema) || a.name.localeCompare(b.name));
  const isSelected = (n: string) => {
    const t = root.tables.find((x) => qualified(x.schema, x.name) === n);
    return t !== undefined && selected(queue.tables, t.schema, t.name);
  };
  for (const table of byName) {
    if (!selected(queue.tables, table.schema, table.name)) continue;
    const name = qualified(table.schema, table.name);
    const entry = queue.tables.entries.find((e) => e.pattern.exact.schema === table.schema && e.pattern.exact.name === table.name);
    // A partition of a selected partitioned table replicates as part of it (the highest selected ancestor):
    // captured once, under the ancestor's name. Listing it too is redundant, and said so.
    const covering = ancestorsOf(root, table).filter(isSelected).pop();
    if (covering) {
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
    const children = inheritanceChildrenOf(root, table).filter((c) => !isSelected(c));
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

function splitName(name: string): [string, string] {
  const dot = name.indexOf('.');
  return [name.slice(0, dot), name.slice(dot + 1)];
}
