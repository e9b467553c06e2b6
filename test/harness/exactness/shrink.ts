/**
 * Shrinks a failing exactness scenario by delta debugging (ddmin over
 * complements): first over its tables, then its transactions, then the
 * items inside the remaining transactions, then the engine events of the
 * timeline — keeping a candidate only when it fails the same way
 * (runner.sameFailure). Bounded by a time budget; returns the smallest
 * failing scenario found and its result.
 */
import { restrict, liveTxns, type Scenario } from './scenario.js';
import { runScenario, sameFailure, type Failure, type RunResult, type ServerRef } from './runner.js';
import type { TimelineEvent } from './workload.js';

export interface ShrinkResult {
  scenario: Scenario;
  result: RunResult;
  runs: number;
  ms: number;
}

async function ddmin<T>(items: T[], fails: (xs: T[]) => Promise<boolean>, inBudget: () => boolean): Promise<T[]> {
  let n = 2;
  while (items.length >= 2 && inBudget()) {
    const chunk = Math.ceil(items.length / n);
    let reduced = false;
    for (let i = 0; i < n && inBudget(); i++) {
      const complement = items.filter((_, j) => Math.floor(j / chunk) !== i);
      if (complement.length < items.length && (await fails(complement))) {
        items = complement;
        n = Math.max(n - 1, 2);
        reduced = true;
        break;
      }
    }
    if (!reduced) {
      if (n >= items.length) break;
      n = Math.min(n * 2, items.length);
    }
  }
  // A last pass: can one more element go?
  if (items.length === 1 && inBudget() && (await fails([]))) return [];
  return items;
}

export async function shrink(
  scenario: Scenario,
  original: Failure,
  originalResult: RunResult,
  source: ServerRef,
  target: ServerRef,
  budgetMs: number,
  log: (line: string) => void = () => undefined,
): Promise<ShrinkResult> {
  const t0 = Date.now();
  const inBudget = () => Date.now() - t0 < budgetMs;
  let best = scenario;
  let bestResult = originalResult;
  let runs = 0;
  const attempt = async (candidate: Scenario): Promise<boolean> => {
    runs++;
    const r = await runScenario(candidate, source, target, { settleTimeoutMs: 20_000 });
    if (!sameFailure(original, r.failure)) return false;
    best = candidate;
    bestResult = r;
    return true;
  };

  // 1. Tables.
  const tables = await ddmin(best.tables.map((t) => t.name), (names) => (names.length ? attempt(restrict(best, { tables: new Set(names) })) : Promise.resolve(false)), inBudget);
  best = restrict(best, { tables: new Set(tables) });
  log(`shrink: ${tables.length} table(s) left after ${runs} runs`);
  // Transactions that no longer have any item are dropped outright.
  const withItems = liveTxns(best).filter((id) => best.txns[id]!.items.some(Boolean));
  best = restrict(best, { txns: new Set(withItems) });

  // 2. Transactions.
  const txns = await ddmin(liveTxns(best), (ids) => attempt(restrict(best, { txns: new Set(ids) })), inBudget);
  best = restrict(best, { txns: new Set(txns) });
  log(`shrink: ${txns.length} transaction(s) left after ${runs} runs`);

  // 3. Items inside the remaining transactions.
  const live = new Set(liveTxns(best));
  const itemIds = best.txns.filter((t) => live.has(t.id)).flatMap((t) => t.items.flatMap((it, i) => (it ? [`${t.id}:${i}`] : [])));
  const keptItems = await ddmin(itemIds, (ids) => attempt(restrict(best, { dropItems: new Set(itemIds.filter((x) => !ids.includes(x))) })), inBudget);
  best = restrict(best, { dropItems: new Set(itemIds.filter((x) => !keptItems.includes(x))) });
  log(`shrink: ${keptItems.length} statement item(s) left after ${runs} runs`);

  // 4. Engine events (ticks, steps, restarts) of the timeline.
  const controls = best.timeline.filter((e) => !('txn' in e));
  const keep = await ddmin(controls, (kept) => attempt({ ...best, timeline: best.timeline.filter((e) => 'txn' in e || kept.includes(e)) }), inBudget);
  const keepSet = new Set<TimelineEvent>(keep);
  best = { ...best, timeline: best.timeline.filter((e) => 'txn' in e || keepSet.has(e)) };
  log(`shrink: ${keep.length} engine event(s) left after ${runs} runs, ${Date.now() - t0} ms`);
  return { scenario: best, result: bestResult, runs, ms: Date.now() - t0 };
}
