/**
 * What `pgconvey run` runs for a file: a ticker per queue on its root and a
 * worker per leaf, or only the work of one node; keys are stable so a
 * discovered piece of work is never started twice.
 */
import { describe, expect, it } from 'vitest';
import { workOf } from '../../../src/daemons/index.js';
import { FILE, state } from '../planner/fixtures.js';

const TWO_LEAVES = FILE.replace(
  'new_leaf: { database: new, type: leaf, provider: old_root }',
  'new_leaf: { database: new, type: leaf, provider: old_root }\n      spare: { database: spare, type: leaf, provider: old_root }',
).replace('  new: "${PGCONVEY_NEW_DSN}"', '  new: "${PGCONVEY_NEW_DSN}"\n  spare: "host=spare dbname=shop"');

describe('run: the work of a file', () => {
  it('is a ticker on the root and a worker per leaf', () => {
    const work = workOf(state(TWO_LEAVES));
    expect(work.map((w) => w.key)).toEqual(['ticker:old:shop', 'worker:new:shop:new_leaf', 'worker:spare:shop:spare']);
    const worker = work[1]!;
    expect(worker.kind === 'worker' && [worker.provider.name, worker.subscriber.name, worker.settings.copy.parallel]).toEqual(['old', 'new', 2]);
  });

  it('is only that node’s work with --node', () => {
    expect(workOf(state(TWO_LEAVES), 'spare').map((w) => w.key)).toEqual(['worker:spare:shop:spare']);
    expect(workOf(state(TWO_LEAVES), 'old_root').map((w) => w.key)).toEqual(['ticker:old:shop']);
  });
});
