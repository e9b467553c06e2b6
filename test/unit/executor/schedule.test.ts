/**
 * The apply's schedule (src/executor/schedule.ts), with the real action kinds
 * and a runner that only records: a plan without a background action runs
 * exactly in its order (groups as before); a copy_schema runs beside the
 * provider's actions while what is on its subscriber's database or depends on
 * it waits; a failure (background or not) is reported through the hooks and
 * thrown once the running actions ended, and nothing starts after it.
 */
import { describe, expect, it } from 'vitest';
import {
  proposeAddSubscriberTable,
  proposeCaptureTable,
  proposeCopySchema,
  proposeCreateQueue,
  proposeGrantRole,
  proposeInstallEngine,
  proposeSubscribe,
  type Action,
} from '../../../src/actions/index.js';
import { ApplyActionError } from '../../../src/executor/index.js';
import { runSchedule, waitsFor, type ScheduleHooks } from '../../../src/executor/schedule.js';
import { SchemaCopyError } from '../../../src/executor/schema-copy.js';

const root = { node: 'old', database: 'src' };
const leaf = { node: 'new', database: 'dst' };
const t = (i: number) => ({ schema: 'public', name: `t${i}` });

/** The plan of an empty target with prepare.schema: copy, in run order (as the planner makes it). */
function emptyTargetPlan(n = 3, extra: { copyDependsOn?: string[] } = {}): Action[] {
  const copy = proposeCopySchema({ node: leaf.node, database: leaf.database, queue: 'q', reason: 'r', dependsOn: extra.copyDependsOn ?? [], tables: [], mode: 'tables', providerDatabase: root.database });
  const engines = [proposeInstallEngine({ database: root.database, version: 1 }), proposeInstallEngine({ database: leaf.database, version: 1 })];
  const queue = proposeCreateQueue({ root, queue: 'q', settings: {} as never, dependsOn: [engines[0]!.id] });
  const captures = Array.from({ length: n }, (_, i) => proposeCaptureTable({ root, queue: 'q', table: t(i), keyColumns: ['id'], change: 'create', reason: 'r', dependsOn: [queue.id] }));
  const sub = proposeSubscribe({ leaf, queue: 'q', provider: root, dependsOn: [queue.id, engines[1]!.id] });
  const adds = captures.map((c, i) => proposeAddSubscriberTable({ leaf, queue: 'q', table: t(i), reason: 'r', dependsOn: [sub.id, copy.id, c.id] }));
  return [copy, ...engines, queue, ...captures, sub, ...adds] as Action[];
}

function deferred(): { promise: Promise<void>; resolve(): void; reject(err: unknown): void } {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every pending callback run (no timer: the event loop's own turns). */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

/** A runner recording `run X`, `group A,B`, and the hooks as `start X` / `done X` / `failed X`; `held` actions end when told. */
function recorder(held: Record<string, ReturnType<typeof deferred>> = {}, fails: Record<string, unknown> = {}) {
  const log: string[] = [];
  const hooks: ScheduleHooks = {
    onStart: (a) => log.push(`start ${a.id}`),
    onDone: (a) => log.push(`done ${a.id}`),
    onFailed: (a, e) => log.push(`failed ${a.id} ${(e as ApplyActionError).code}`),
  };
  const runner = {
    execute: async (a: Action) => {
      log.push(`run ${a.id}`);
      if (held[a.id]) await held[a.id]!.promise;
      if (a.id in fails) throw fails[a.id];
    },
    // As groups.ts: every action commits, then each one's hooks fire.
    group: async (run: Action[]) => {
      log.push(`group ${run.map((a) => a.id).join(',')}`);
      for (const a of run) if (held[a.id]) await held[a.id]!.promise;
      for (const a of run) {
        hooks.onStart!(a);
        hooks.onDone!(a, 0);
      }
      return run.length;
    },
  };
  return { log, hooks, runner };
}

const runs = (log: string[]) => log.filter((l) => l.startsWith('run ') || l.startsWith('group '));

describe('the apply schedule', () => {
  it('runs a plan without a background action exactly in its order, consecutive groupable actions as a group', async () => {
    const plan = emptyTargetPlan(3).filter((a) => a.kind !== 'copy_schema');
    // (add_subscriber_table still names the copy: an id not in the plan is not waited for.)
    const { log, hooks, runner } = recorder();
    await runSchedule(plan, runner, hooks);
    expect(runs(log)).toEqual([
      'run install_engine:db:src',
      'run install_engine:db:dst',
      'run create_queue:old:q',
      'group capture_table:old:public.t0,capture_table:old:public.t1,capture_table:old:public.t2',
      'run subscribe:new:q',
      'group add_subscriber_table:new:public.t0,add_subscriber_table:new:public.t1,add_subscriber_table:new:public.t2',
    ]);
    expect(log.filter((l) => l.startsWith('done ')).length).toBe(plan.length);
  });

  it("runs copy_schema beside the provider's actions; what is on the subscriber or depends on it waits for it", async () => {
    const plan = emptyTargetPlan(3);
    const copy = deferred();
    const { log, hooks, runner } = recorder({ 'copy_schema:new:q': copy });
    const applied = runSchedule(plan, runner, hooks);
    await settle();
    // The provider's work is done, the subscriber's waits (its install_engine was passed).
    expect(runs(log)).toEqual(['run copy_schema:new:q', 'run install_engine:db:src', 'run create_queue:old:q', 'group capture_table:old:public.t0,capture_table:old:public.t1,capture_table:old:public.t2']);
    expect(log).not.toContain('done copy_schema:new:q');
    let finished = false;
    void applied.then(() => (finished = true));
    await settle();
    expect(finished).toBe(false);
    copy.resolve();
    await applied;
    expect(runs(log).slice(4)).toEqual([
      'run install_engine:db:dst',
      'run subscribe:new:q',
      'group add_subscriber_table:new:public.t0,add_subscriber_table:new:public.t1,add_subscriber_table:new:public.t2',
    ]);
    // Hooks: the copy starts first and ends after the captures; every action starts once and ends once.
    expect(log[0]).toBe('start copy_schema:new:q');
    expect(log.indexOf('done copy_schema:new:q')).toBeGreaterThan(log.indexOf('done capture_table:old:public.t2'));
    for (const a of plan) {
      expect(log.filter((l) => l === `start ${a.id}`).length).toBe(1);
      expect(log.filter((l) => l === `done ${a.id}`).length).toBe(1);
    }
  });

  it('starts copy_schema as soon as what it depends on is done, not before', async () => {
    const grant = proposeGrantRole({ database: leaf.database, queue: 'q', member: 'app', parent: 'owner', dependsOn: [] }) as Action;
    const plan = [grant, ...emptyTargetPlan(1, { copyDependsOn: [grant.id] })];
    const held = { [grant.id]: deferred() };
    const { log, hooks, runner } = recorder(held);
    const applied = runSchedule(plan, runner, hooks);
    await settle();
    expect(runs(log)).toEqual([`run ${grant.id}`]);
    held[grant.id]!.resolve();
    await applied;
    expect(runs(log).slice(0, 3)).toEqual([`run ${grant.id}`, 'run copy_schema:new:q', 'run install_engine:db:src']);
  });

  it('a failed copy_schema: reported through the hooks, the running actions end, nothing else starts, its error thrown', async () => {
    const plan = emptyTargetPlan(2);
    const copy = deferred();
    const captures = deferred();
    const { log, hooks, runner } = recorder({ 'copy_schema:new:q': copy, 'capture_table:old:public.t0': captures });
    const applied = runSchedule(plan, runner, hooks);
    const outcome = applied.catch((e: unknown) => e);
    await settle();
    expect(runs(log).at(-1)).toBe('group capture_table:old:public.t0,capture_table:old:public.t1');
    copy.reject(new SchemaCopyError('schema_copy_failed', 'creating TABLE public.t0 failed', 'fix it'));
    await settle();
    expect(log).toContain('failed copy_schema:new:q schema_copy_failed');
    captures.resolve();
    const err = await outcome;
    expect(err).toBeInstanceOf(ApplyActionError);
    expect((err as ApplyActionError).action.id).toBe('copy_schema:new:q');
    expect((err as ApplyActionError).code).toBe('schema_copy_failed');
    // The group that was running committed; nothing started after the failure.
    expect(log).toContain('done capture_table:old:public.t1');
    expect(runs(log)).not.toContain('run install_engine:db:dst');
    expect(runs(log)).not.toContain('run subscribe:new:q');
    expect(log.filter((l) => l.startsWith('failed ')).length).toBe(1);
  });

  it('a failed foreground action: nothing starts after it, the copy running ends first, then its error is thrown', async () => {
    const plan = emptyTargetPlan(1);
    const copy = deferred();
    const { log, hooks, runner } = recorder({ 'copy_schema:new:q': copy }, { 'create_queue:old:q': Object.assign(new Error('boom'), { code: 'XX000' }) });
    let settled = false;
    const outcome = runSchedule(plan, runner, hooks).catch((e: unknown) => e).finally(() => (settled = true));
    await settle();
    expect(log).toContain('failed create_queue:old:q apply_action_failed');
    expect(settled).toBe(false); // the copy is still running
    copy.resolve();
    const err = await outcome;
    expect((err as ApplyActionError).action.id).toBe('create_queue:old:q');
    expect((err as ApplyActionError).message).toMatch(/action create_queue:old:q failed: boom \(SQLSTATE XX000\)/);
    expect(log.indexOf('done copy_schema:new:q')).toBeGreaterThan(log.indexOf('failed create_queue:old:q apply_action_failed'));
    expect(runs(log)).toEqual(['run copy_schema:new:q', 'run install_engine:db:src', 'run create_queue:old:q']);
  });

  it('two failures: both reported, the first thrown', async () => {
    const plan = emptyTargetPlan(1);
    const copy = deferred();
    const { log, hooks, runner } = recorder({ 'copy_schema:new:q': copy }, { 'install_engine:db:src': new Error('first'), 'copy_schema:new:q': new Error('second') });
    const outcome = runSchedule(plan, runner, hooks).catch((e: unknown) => e);
    await settle();
    copy.resolve();
    const err = (await outcome) as ApplyActionError;
    expect(err.action.id).toBe('install_engine:db:src');
    expect(log.filter((l) => l.startsWith('failed '))).toEqual(['failed install_engine:db:src apply_action_failed', 'failed copy_schema:new:q apply_action_failed']);
  });

  it('two copies into one database run one after the other; into two databases, side by side', async () => {
    const mk = (node: string, database: string, queue: string) =>
      proposeCopySchema({ node, database, queue, reason: 'r', dependsOn: [], tables: [], mode: 'tables', providerDatabase: root.database }) as Action;
    const [a, b, c] = [mk('new', 'dst', 'q1'), mk('new', 'dst', 'q2'), mk('other', 'dst2', 'q1')];
    const held = { [a.id]: deferred(), [b.id]: deferred(), [c.id]: deferred() };
    const { log, hooks, runner } = recorder(held);
    const applied = runSchedule([a, b, c], runner, hooks);
    await settle();
    expect(runs(log)).toEqual([`run ${a.id}`, `run ${c.id}`]);
    held[a.id]!.resolve();
    await settle();
    expect(runs(log)).toEqual([`run ${a.id}`, `run ${c.id}`, `run ${b.id}`]);
    held[b.id]!.resolve();
    held[c.id]!.resolve();
    await applied;
  });

  it("waits for: direct dependencies before it and the last action on each database it uses (a copy: only its own)", () => {
    const plan = emptyTargetPlan(1);
    const w = waitsFor(plan);
    const at = (id: string) => plan.findIndex((a) => a.id === id);
    expect(w[at('copy_schema:new:q')]).toEqual([]);
    expect(w[at('install_engine:db:src')]).toEqual([]); // the copy reads src but does not hold it
    expect(w[at('install_engine:db:dst')]).toEqual([at('copy_schema:new:q')]);
    expect(new Set(w[at('subscribe:new:q')])).toEqual(new Set([at('create_queue:old:q'), at('install_engine:db:dst'), at('capture_table:old:public.t0')]));
    // A dependency on a later action (the run order's fallback for a cycle) is not waited for.
    const cyclic = [{ ...plan[1]!, dependsOn: [plan[2]!.id] }, plan[2]!] as Action[];
    expect(waitsFor(cyclic)[0]).toEqual([]);
  });
});
