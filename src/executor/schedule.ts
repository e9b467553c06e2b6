/**
 * When each action of a plan runs (apply.ts runs them): one at a time, in the
 * plan's order — except a background action (ActionModule.background:
 * copy_schema), which starts as soon as the actions before it that it waits
 * for are done and runs beside the ones after it. An action waits for the
 * actions before it that it lists in dependsOn (direct ids; a later one,
 * a cycle's fallback, is not waited for) and for the last action before it
 * on each database it uses (its `databases()`; a background action uses only
 * its own database, not the provider's it reads). So actions on one database
 * keep their order; an action that must wait for a background action still
 * running is passed by the later actions that wait for none not yet done
 * (a plan without a background action runs exactly in its order).
 * Consecutive groupable actions on one database, each free to start, run as
 * a group (groups.ts). Progress hooks fire for each action as it starts and
 * ends (a group's after its commit); a failure is reported through the hooks
 * as an ApplyActionError and no action starts after it: the ones running
 * finish (or roll back), then the first failure is thrown.
 */
import { moduleOf, type Action } from '../actions/index.js';
import { ApplyActionError } from './errors.js';
import { GROUP } from './groups.js';

export interface ScheduleHooks {
  onStart?(action: Action): void;
  onDone?(action: Action, ms: number): void;
  onFailed?(action: Action, error: unknown): void;
}

export interface ScheduleRunner {
  /** Runs one action (its own transaction). */
  execute(action: Action): Promise<void>;
  /** Runs groupable actions on one database as a group; returns how many committed (groups.ts runGroup, which fires their hooks). */
  group(actions: Action[]): Promise<number>;
}

/** What the schedule asks of an action's kind (its module's, by default). */
export interface ScheduleTraits {
  background(action: Action): boolean;
  groupable(action: Action): boolean;
  databases(action: Action): string[];
  maxGroup: number;
}

export const MODULE_TRAITS: ScheduleTraits = {
  background: (a) => moduleOf(a).background === true,
  groupable: (a) => moduleOf(a).groupable === true,
  databases: (a) => moduleOf(a).databases(a),
  maxGroup: GROUP.maxActions,
};

/** For each action, the indexes of the earlier actions it waits for (see the header). */
export function waitsFor(actions: readonly Action[], traits: Pick<ScheduleTraits, 'background' | 'databases'> = MODULE_TRAITS): number[][] {
  const index = new Map(actions.map((a, i) => [a.id, i]));
  const lastOn = new Map<string, number>();
  return actions.map((a, i) => {
    const before = new Set<number>();
    for (const id of a.dependsOn) {
      const j = index.get(id);
      if (j !== undefined && j < i) before.add(j);
    }
    for (const database of new Set(traits.background(a) ? [a.database] : traits.databases(a))) {
      const j = lastOn.get(database);
      if (j !== undefined) before.add(j);
      lastOn.set(database, i);
    }
    return [...before];
  });
}

export async function runSchedule(actions: readonly Action[], runner: ScheduleRunner, hooks: ScheduleHooks = {}, traits: ScheduleTraits = MODULE_TRAITS): Promise<void> {
  const before = waitsFor(actions, traits);
  const done = actions.map(() => false);
  const ready = (i: number, alsoDone?: ReadonlySet<number>) => before[i]!.every((j) => done[j] || alsoDone?.has(j));
  let foreground = actions.flatMap((a, i) => (traits.background(a) ? [] : [i]));
  let background = actions.flatMap((a, i) => (traits.background(a) ? [i] : []));
  const running = new Set<Promise<void>>();
  let failure: ApplyActionError | null = null;
  const fail = (action: Action, err: unknown) => {
    const f = err instanceof ApplyActionError ? err : new ApplyActionError(action, err);
    failure ??= f;
    hooks.onFailed?.(action, f);
  };
  const single = async (i: number) => {
    const action = actions[i]!;
    hooks.onStart?.(action);
    const t0 = Date.now();
    try {
      await runner.execute(action);
    } catch (err) {
      fail(action, err);
      return;
    }
    done[i] = true;
    hooks.onDone?.(action, Date.now() - t0);
  };

  try {
    while (!failure && (foreground.length || background.length)) {
      // Background actions first, as soon as they may start.
      const start = background.filter((j) => ready(j));
      background = background.filter((j) => !start.includes(j));
      for (const i of start) {
        const p: Promise<void> = single(i).finally(() => running.delete(p));
        running.add(p);
      }
      const at = foreground.findIndex((j) => ready(j));
      if (at < 0) {
        if (!running.size) throw new Error('internal: no action of the plan can start (a dependency that never ends)');
        await Promise.race(running);
        continue;
      }
      const first = foreground[at]!;
      // A group: the groupable actions that follow on the same database, each free to start after the ones before it.
      const run = [first];
      if (traits.groupable(actions[first]!)) {
        const inRun = new Set(run);
        for (let k = at + 1; k < foreground.length && run.length < traits.maxGroup; k++) {
          const j = foreground[k]!;
          if (!traits.groupable(actions[j]!) || actions[j]!.database !== actions[first]!.database || !ready(j, inRun)) break;
          run.push(j);
          inRun.add(j);
        }
      }
      let alone = first;
      if (run.length > 1) {
        let committed: number;
        try {
          committed = await runner.group(run.map((j) => actions[j]!));
        } catch (err) {
          fail(actions[first]!, err);
          break;
        }
        for (const j of run.slice(0, committed)) done[j] = true;
        foreground = foreground.filter((j) => !done[j]);
        // The group was full, or its next action failed: that one runs on its own.
        if (committed === run.length || failure) continue;
        alone = run[committed]!;
      }
      foreground = foreground.filter((j) => j !== alone);
      await single(alone);
    }
  } finally {
    // Whatever happened, the background actions running finish before the apply ends.
    await Promise.all(running);
  }
  if (failure) throw failure;
}
