/**
 * The planner: a pure function from the desired state and the catalog of
 * every database to a Plan — checks (with codes and fix hints) and actions in
 * a deterministic order. Each concern is a step of its own (checks, engine,
 * queue, selection, tables, sequences, consumers, subscribers with roles and
 * schema copy), proposing actions through the action modules' constructors.
 * Globs are resolved on the root's catalog, so a new table that matches
 * `include` shows up in the next plan. No I/O.
 */
import { nodesTopDown } from '../config/index.js';
import { hasErrors } from '../kernel/index.js';
import { ACTION_KINDS } from './action.js';
import { PlanBuilder } from './builder.js';
import { branchRemovalChecks, cascadeChecks, planBranchQueue } from './cascade.js';
import { captureOwnerCheck, materializedViewChecks } from './checks.js';
import { planConsumers } from './consumers.js';
import { planEngine } from './engine.js';
import type { PlanInput } from './input.js';
import type { Action } from './action.js';
import type { Plan } from './plan.js';
import { planQueue } from './queue.js';
import { selectTables } from './selection.js';
import { planSequences } from './sequences.js';
import { planSubscriber } from './subscribers.js';
import { planCaptures } from './tables.js';

export function buildPlan(input: PlanInput): Plan {
  const plan = new PlanBuilder();
  const matviewsListed = new Set<string>();
  for (const queue of input.state.queues) {
    const root = queue.nodes.find((n) => n.type === 'root')!;
    const rootCatalog = input.catalogs[root.database];
    if (!rootCatalog) throw new Error(`internal: no catalog for database "${root.database}"`);
    if (!matviewsListed.has(root.database)) {
      matviewsListed.add(root.database);
      materializedViewChecks(queue, root, rootCatalog, plan.check);
    }
    cascadeChecks(input, queue, plan);
    const rootEngine = planEngine(input, root, plan);
    captureOwnerCheck(root, rootCatalog, plan.check);
    const queueState = rootCatalog.engine?.queues.find((q) => q.name === queue.name);
    const queueReady = planQueue(queue, root, queueState, rootEngine, plan);
    // Tables: resolve the selection on the root, check each, capture what is not captured yet.
    const tables = selectTables(queue, rootCatalog, plan.check);
    const captureIds = planCaptures(queue, root, rootCatalog, queueState, tables, queueReady, plan);
    const sequences = planSequences(queue, root, rootCatalog, queueState, queueReady, plan);
    planConsumers(input, queue, root, queueState, plan);
    // Subscribers, each after its provider: a branch's own subscribers wait for its queue (cascades).
    const readyOf = new Map<string, string[]>([[root.name, queueReady]]);
    for (const node of nodesTopDown(queue)) {
      const ready = readyOf.get(node.provider!) ?? [];
      const provider = queue.nodes.find((n) => n.name === node.provider)!;
      const ids = planSubscriber(input, { queue, root, rootCatalog, tables, sequences, queueReady: ready, captureIds, provider }, node, plan);
      if (node.type !== 'branch') continue;
      const branchQueue = input.catalogs[node.database]?.engine?.queues.find((q) => q.name === queue.name);
      planConsumers(input, queue, node, branchQueue, plan);
      readyOf.set(node.name, [...ready, ...planBranchQueue(input, queue, node, ids, plan)]);
    }
    branchRemovalChecks(input, queue, plan);
  }

  const ordered = runOrder(plan.actions());
  return {
    checks: plan.checks,
    actions: ordered,
    summary: {
      add: ordered.filter((a) => a.change === 'create').length,
      change: ordered.filter((a) => a.change === 'update').length,
      remove: ordered.filter((a) => a.change === 'delete').length,
    },
    errored: hasErrors(plan.checks),
  };
}

/**
 * The actions in run order: by kind (ACTION_KINDS), then id — except that an action never runs before one
 * it depends on (a cascade's subscribe of a node under a branch waits for that branch's create_branch_queue,
 * which waits for the branch's own subscribe). Deterministic.
 */
function runOrder(actions: Action[]): Action[] {
  const rank = (a: Action, b: Action) => ACTION_KINDS.indexOf(a.kind) - ACTION_KINDS.indexOf(b.kind) || a.id.localeCompare(b.id);
  const left = [...actions].sort(rank);
  const ids = new Set(left.map((a) => a.id));
  const done = new Set<string>();
  const out: Action[] = [];
  while (left.length) {
    const i = left.findIndex((a) => a.dependsOn.every((d) => done.has(d) || !ids.has(d)));
    const [next] = left.splice(i < 0 ? 0 : i, 1); // a cycle (none is planned) falls back to the kind order
    done.add(next!.id);
    out.push(next!);
  }
  return out;
}
