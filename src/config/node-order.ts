/**
 * The nodes of a queue in cascade order (pure): every node after its
 * provider, breadth first from the root, by name within a level — the order
 * the planner plans nodes in and compare pairs them in.
 */
import type { NodeSpec, QueueSpec } from './desired-state.js';

/** The queue's non-root nodes, each after its provider (breadth first from the root, by name in a level). */
export function nodesTopDown(queue: QueueSpec): NodeSpec[] {
  const root = queue.nodes.find((n) => n.type === 'root')!;
  const out: NodeSpec[] = [];
  let level = [root.name];
  const seen = new Set(level);
  while (level.length) {
    const next = queue.nodes.filter((n) => n.provider !== undefined && level.includes(n.provider) && !seen.has(n.name)).sort((a, b) => a.name.localeCompare(b.name));
    for (const n of next) seen.add(n.name);
    out.push(...next);
    level = next.map((n) => n.name);
  }
  return out;
}
