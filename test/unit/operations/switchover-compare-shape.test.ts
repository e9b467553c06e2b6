/**
 * The pure parts of switchover and compare, without a server: the reverse
 * queue's name (engine/reverse.ts, the one place that knows it), target
 * resolution, the compare defaults, the error types; and that the two
 * folders reach the engine's own tables only through engine/.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadDesiredState } from '../../../src/config/index.js';
import { forwardQueueOf, reverseQueueName } from '../../../src/engine/index.js';
import { PgconveyError } from '../../../src/kernel/index.js';
import { COMPARE_DEFAULTS, CompareError, SwitchoverError, TableNameError, parseTableName, resolveTarget } from '../../../src/operations/index.js';
import { settingsOf } from '../../../src/operations/compare/options.js';
import { emptyReport } from '../../../src/operations/switchover/report.js';
import { SwitchoverRun } from '../../../src/operations/switchover/run.js';

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

describe('reverse replication names', () => {
  it('the reverse queue is <queue>_reverse, cut to 63 characters, and maps back', () => {
    expect(reverseQueueName('shop')).toBe('shop_reverse');
    const long = 'q'.repeat(63);
    expect(reverseQueueName(long)).toHaveLength(63);
    expect(reverseQueueName(long).endsWith('_reverse')).toBe(true);
    expect(forwardQueueOf('shop_reverse', ['other', 'shop'])).toBe('shop');
    expect(forwardQueueOf(reverseQueueName(long), [long])).toBe(long);
    expect(forwardQueueOf('shop_reverse', ['other'])).toBeUndefined();
  });

  it('only engine/reverse.ts spells the reverse suffix or the provider_database mark', () => {
    const text = (f: string) => readFileSync(f, 'utf8');
    const spelled = files('src').filter((f) => !f.startsWith(join('src', 'engine', 'sql')) && (text(f).includes("'_reverse'") || text(f).includes('provider_database')));
    expect(spelled).toEqual([join('src', 'engine', 'reverse.ts')]);
  });
});

describe('switchover and compare reach pgconvey.* only through engine/', () => {
  it('no SQL on pgconvey.* tables in src/operations/switchover or src/operations/compare', () => {
    const offenders = [...files(join('src', 'operations', 'switchover')), ...files(join('src', 'operations', 'compare'))].filter((f) => /pgconvey\.[a-z_]+/.test(readFileSync(f, 'utf8')));
    expect(offenders).toEqual([]);
  });
});

describe('switchover target resolution', () => {
  it('finds the queue, the root and the leaf, and names what to write instead', async () => {
    const state = (await loadDesiredState('plans/upgrade-two-node.yaml', {})).state!;
    const t = resolveTarget(state, { to: 'new_leaf' });
    expect([t.queue.name, t.root.name, t.target.name, t.leaves.map((l) => l.name)]).toEqual([state.queues[0]!.name, 'old_root', 'new_leaf', ['new_leaf']]);
    expect(resolveTarget(state, { to: 'old_root' }).target.name).toBe('old_root');
    expect(() => resolveTarget(state, { to: 'new_lef' })).toThrow(expect.objectContaining({ code: 'unknown_node', hint: 'did you mean "new_leaf"?' }));
    expect(() => resolveTarget(state, { to: 'new_leaf', queue: 'nope' })).toThrow(SwitchoverError);
  });

  it('a fresh report has no steps and outcome switched', () => {
    const ref = { node: 'a', database: 'a', display: 'x' };
    expect(emptyReport('q', 'forward', ref, ref)).toMatchObject({ queue: 'q', direction: 'forward', outcome: 'switched', steps: [], reverse: null, writeUnavailableMs: null });
  });
});

describe('a switchover step', () => {
  const run = async () => {
    const state = (await loadDesiredState('plans/upgrade-two-node.yaml', {})).state!;
    const t = resolveTarget(state, { to: 'new_leaf' });
    const ref = (node: string) => ({ node, database: node, display: node });
    const steps: string[] = [];
    const r = new SwitchoverRun(t, { to: 'new_leaf', reverse: false, maxLagMs: 1, sequenceMargin: 1, timeoutMs: 1 }, { onStep: (s) => steps.push(s.step) }, 'f.yaml', 'forward', ref('old_root'), ref('new_leaf'));
    return { r, steps };
  };

  it('is timed and reported as it finishes', async () => {
    const { r, steps } = await run();
    expect(await r.step('sequences', async () => ({ value: 7, detail: 'd' }))).toBe(7);
    expect(steps).toEqual(['sequences']);
    expect(r.report.steps[0]).toMatchObject({ step: 'sequences', detail: 'd' });
  });

  it('turns a server error into switchover_step_failed, naming how to finish or undo once fenced', async () => {
    const { r } = await run();
    const serverError = Object.assign(new Error('boom'), { code: '57014' });
    await expect(r.step('drain', () => Promise.reject(serverError))).rejects.toMatchObject({ code: 'switchover_step_failed', hint: expect.stringMatching(/^nothing was changed/) });
    r.fenced = true;
    const err = (await r.step('drain', () => Promise.reject(serverError)).catch((e: unknown) => e)) as SwitchoverError;
    expect(err).toBeInstanceOf(SwitchoverError);
    expect(err.message).toBe('step drain failed: boom (SQLSTATE 57014)');
    expect(err.hint).toContain('pgconvey switchover f.yaml --to new_leaf');
    expect(err.hint).toContain('--to old_root');
    expect(err.report).toBe(r.report);
  });
});

describe('compare settings and errors', () => {
  it('fills in the defaults, keeping what was given (undefined is not given)', () => {
    expect(settingsOf({ chunkRows: 10, narrowRows: undefined })).toMatchObject({ ...COMPARE_DEFAULTS, chunkRows: 10 });
  });

  it('the error types are PgconveyErrors with their codes, hints and fields', () => {
    const c = new CompareError('unknown_table', 'm', 'h');
    expect(c).toBeInstanceOf(PgconveyError);
    expect([c.name, c.code, c.hint, c.suggestions]).toEqual(['CompareError', 'unknown_table', 'h', ['h']]);
    const s = new SwitchoverError('switchover_cancelled', 'm', 'h');
    expect([s instanceof PgconveyError, s.name, s.report]).toEqual([true, 'SwitchoverError', null]);
    expect(() => parseTableName('public.*')).toThrow(TableNameError);
    try {
      parseTableName('public.*');
    } catch (err) {
      expect(err).toBeInstanceOf(PgconveyError);
      expect((err as TableNameError).code).toBe('invalid_name');
    }
    expect(parseTableName('orders')).toEqual({ schema: 'public', name: 'orders' });
  });
});
