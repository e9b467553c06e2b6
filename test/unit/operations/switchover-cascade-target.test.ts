/**
 * Switchover targets in a cascade (resolveTarget, no server): a branch whose
 * provider is the root is a target (cascade), a node further down is not; a
 * leaf of the root while the queue has a branch, and a branch while the root
 * has other subscribers, are refused with their own codes and hints.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadDesiredState } from '../../../src/config/index.js';
import { resolveTarget } from '../../../src/operations/index.js';

async function stateOf(nodes: string[]) {
  const file = `${mkdtempSync('/tmp/pgconvey-unit-')}/q.yaml`;
  writeFileSync(
    file,
    ['version: 1', 'databases:', '  a: "host=a dbname=x"', '  b: "host=b dbname=x"', '  c: "host=c dbname=x"', '  d: "host=d dbname=x"', 'queues:', '  q:', '    nodes:', ...nodes.map((n) => `      ${n}`), '    tables: { include: ["public.*"] }', ''].join('\n'),
  );
  const loaded = await loadDesiredState(file, {});
  if (!loaded.state) throw new Error(JSON.stringify(loaded));
  return loaded.state;
}

describe('switchover targets in a cascade', () => {
  it('a branch of the root is a target (its subscribers keep following it); a node under it is not', async () => {
    const state = (await loadDesiredState('plans/cascade.yaml', {})).state!;
    const t = resolveTarget(state, { to: 'branch_dc2' });
    expect([t.root.name, t.target.name, t.cascade, t.leaves.map((l) => l.name)]).toEqual(['root_dc1', 'branch_dc2', true, ['branch_dc2']]);
    expect(resolveTarget(state, { to: 'root_dc1' }).cascade).toBe(false);
    expect(() => resolveTarget(state, { to: 'reporting_dc2' })).toThrow(
      expect.objectContaining({ code: 'switchover_target_not_child', message: expect.stringContaining('follows "branch_dc2", not the root "root_dc1"') }),
    );
  });

  it('a leaf of the root while the queue has a branch is refused, naming the branch', async () => {
    const state = await stateOf(['r: { database: a, type: root }', 'b: { database: b, type: branch, provider: r }', 'l: { database: c, type: leaf, provider: b }', 'm: { database: d, type: leaf, provider: r }']);
    expect(() => resolveTarget(state, { to: 'm' })).toThrow(expect.objectContaining({ code: 'switchover_cascade_leaf', message: expect.stringContaining('branch(es) "b"') }));
  });

  it('a branch while the root has other subscribers is refused, naming them and the move that makes it possible', async () => {
    const state = await stateOf(['r: { database: a, type: root }', 'b: { database: b, type: branch, provider: r }', 'l: { database: c, type: leaf, provider: b }', 'm: { database: d, type: leaf, provider: r }']);
    expect(() => resolveTarget(state, { to: 'b' })).toThrow(
      expect.objectContaining({ code: 'switchover_cascade_other_subscribers', message: expect.stringContaining('"m"'), hint: expect.stringContaining('`provider: b`') }),
    );
  });

  it('without a branch, a leaf of the root is a target as before', async () => {
    const state = await stateOf(['r: { database: a, type: root }', 'l: { database: c, type: leaf, provider: r }', 'm: { database: d, type: leaf, provider: r }']);
    expect(resolveTarget(state, { to: 'm' })).toMatchObject({ cascade: false, target: { name: 'm' } });
  });
});
